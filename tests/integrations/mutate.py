"""Hypothesis strategies for what strangers and broken senders post: random bytes, random JSON,
and a service's real payload with one field removed, nulled, of the wrong type, or huge."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

HUGE = 200_000
"""Characters in a huge field: twice what a task's instruction may hold."""

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON document."""

odd_text = st.sampled_from(
    [
        "x" * HUGE,
        "\x00nul",
        "\ud800 half a pair",
        "\u202e right to left",
        "a\nb",
        "",
        " ",
        "@autan " * 5000,
    ]
)
"""Strings a field should survive: huge, control characters, a lone surrogate, empty."""


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a key or an item inside `value`, outermost first."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    found: list[tuple[Any, ...]] = []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


def _apply(payload: Any, path: tuple[Any, ...], how: str, replacement: Any) -> Any:
    changed = copy.deepcopy(payload)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    if how == "remove":
        del parent[path[-1]]
    else:
        parent[path[-1]] = {"null": None, "replace": replacement}[how]
    return changed


@st.composite
def mutated(draw: st.DrawFn, payload: dict[str, Any]) -> Any:
    """`payload` with a field or two removed, nulled, or replaced by other JSON or an odd
    string."""
    for _ in range(draw(st.integers(1, 2))):
        path = draw(st.sampled_from(paths(payload) or [()]))
        if not path:
            break
        how = draw(st.sampled_from(["remove", "null", "replace", "replace"]))
        replacement = draw(st.one_of(odd_text, odd_text, json_values))
        payload = _apply(payload, path, how, replacement)
    return payload


@st.composite
def odd_strings(draw: st.DrawFn, payload: dict[str, Any]) -> Any:
    """`payload` with one of its strings made huge, or given a control character or a lone
    surrogate: what a task's text must survive or refuse."""
    texts = [path for path in paths(payload) if isinstance(_get(payload, path), str)]
    return _apply(payload, draw(st.sampled_from(texts)), "replace", draw(odd_text))


def _get(payload: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        payload = payload[key]
    return payload


def bodies(payload: dict[str, Any]) -> st.SearchStrategy[Any]:
    """JSON-able things to post: mostly the real payload changed (where the bugs hide: deep
    in a shape or a text the code trusts), sometimes random JSON or the payload itself."""
    changed, odd = mutated(payload), odd_strings(payload)
    return st.one_of(changed, changed, odd, odd, json_values, st.just(payload))
