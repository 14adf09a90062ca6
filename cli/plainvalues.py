"""Typer commands whose plain option values are read without importing pydantic (start-up).

Typer reads every value through a pydantic TypeAdapter: importing pydantic and building the
adapters costs a short command most of its start-up. `PlainValues` reads the values that are
plainly valid (text, digits, a path, one of a Literal's choices, lists of those) itself, to
the same result, and hands anything else to typer's own adapter, so that odd input gets
exactly typer's answer and its error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args, get_origin

from typer import _click
from typer._click import Context
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_choice, coerce_cli_path
from typer._typing import is_literal_type, literal_values
from typer.core import TyperCommand, TyperGroup, _TyperParameter
from typer.models import ParameterInfo

# Digits, and digits with a fraction: what int() and float() read as pydantic does.
_INT = re.compile(r"[0-9]{1,18}")
_FLOAT = re.compile(r"[0-9]{1,18}(\.[0-9]{1,18})?")


class _Other(Exception):
    """Raised when a value is not plainly valid: typer's own adapter reads it."""


def _in_bounds(number: float, info: ParameterInfo) -> float:
    if (info.min is not None and number < info.min) or (info.max is not None and number > info.max):
        raise _Other
    return number


def _plain(value: Any, annotation: Any, info: ParameterInfo, param: Any, ctx: Context) -> Any:
    """`value` read as `annotation`, as typer's adapter reads it; _Other where unsure."""
    if info.parser is not None:
        raise _Other
    if get_origin(annotation) is list and isinstance(value, list | tuple):
        (item,) = get_args(annotation)
        return [_plain(v, item, info, param, ctx) for v in value]
    if isinstance(value, str):
        return _text(value, annotation, info, param, ctx)
    if type(value) is annotation and annotation in (int, float):  # a default
        return _in_bounds(value, info)
    raise _Other


def _text(value: str, annotation: Any, info: ParameterInfo, param: Any, ctx: Context) -> Any:
    if annotation is str:
        return value
    if annotation is int and _INT.fullmatch(value):
        return _in_bounds(int(value), info)
    if annotation is float and _FLOAT.fullmatch(value):
        return _in_bounds(float(value), info)
    if annotation is Path and info.path_type is None:
        # The adapter makes Path(value), then runs these same checks with the same messages.
        path = coerce_cli_path(value, info, path_type=None, param=param, ctx=ctx)
        assert isinstance(path, str)
        return Path(path)
    if is_literal_type(annotation):
        try:
            choices = literal_values(annotation)
            return coerce_cli_choice(
                value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx
            )
        except ValueError:
            raise _Other from None
    raise _Other


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """Typer's reading of one parameter, plain values first."""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        if self.parameter_info.clamp:
            return self._typer(value, param, ctx)
        try:
            return _plain(value, self.annotation, self.parameter_info, param, ctx)
        except _Other:
            return self._typer(value, param, ctx)

    def _typer(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        return build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)


def _plain_param(param: object) -> None:
    """Give a typer parameter the plain-first reading, unless typer already built its own."""
    if isinstance(param, _TyperParameter) and param._runtime_param is None:
        descriptor = param.type_descriptor
        if descriptor.file_annotation is None:
            param._runtime_param = PlainRuntimeParam(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
            )


class _PlainParams(_click.Command):
    """Plain-first reading for every parameter of a command, its --help option too (typer
    builds a parameter's reading when it processes it, even when no value was given)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            _plain_param(param)

    def get_help_option(self, ctx: Context) -> Any:
        option = super().get_help_option(ctx)
        _plain_param(option)
        return option


class PlainValues(_PlainParams, TyperCommand):
    """A typer command (`@app.command(cls=PlainValues)`) reading plain values without pydantic."""


class PlainGroup(_PlainParams, TyperGroup):
    """A typer group (`typer.Typer(cls=PlainGroup)`) reading plain values without pydantic."""
