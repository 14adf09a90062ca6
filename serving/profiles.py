"""vLLM set-ups we know: the `vllm serve` command for each, and running it."""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from typing import NoReturn

from pydantic import BaseModel, Field

from serving.errors import VllmNotInstalled

MEDIUM_35 = "mistralai/Mistral-Medium-3.5-128B"
DEVSTRAL_SMALL = "mistralai/Devstral-Small-2507"
MISTRAL_TOOLS = ("--tool-call-parser", "mistral", "--enable-auto-tool-choice")


@dataclass(frozen=True)
class Profile:
    name: str
    model: str
    args: tuple[str, ...]
    about: str


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "medium-3.5-8gpu",
            MEDIUM_35,
            ("--tensor-parallel-size", "8", *MISTRAL_TOOLS, "--reasoning-parser", "mistral",
             "--max-num-batched-tokens", "16384", "--max-num-seqs", "128",
             "--gpu-memory-utilization", "0.8"),
            "Mistral Medium 3.5 on 8 GPUs, as its model card gives it.",
        ),
        Profile(
            "medium-3.5-4gpu",
            MEDIUM_35,
            ("--tensor-parallel-size", "4", *MISTRAL_TOOLS, "--reasoning-parser", "mistral",
             "--max-num-batched-tokens", "16384", "--max-num-seqs", "64",
             "--gpu-memory-utilization", "0.9"),
            "Mistral Medium 3.5 on 4 GPUs of 80 GB: fewer sequences, more memory for the KV cache.",
        ),
        Profile(
            "devstral-small-1gpu",
            DEVSTRAL_SMALL,
            ("--tokenizer-mode", "mistral", "--config-format", "mistral", "--load-format",
             "mistral", *MISTRAL_TOOLS),
            "Devstral Small on one GPU.",
        ),
    )
}  # fmt: skip


class ServeConfig(BaseModel):
    """Where `vllm serve` listens, and anything to add to a profile's arguments."""

    host: str | None = None
    """Address to bind; vLLM's default (all interfaces) when unset."""

    port: int | None = Field(default=None, ge=1, le=65535)
    """Port; vLLM's default (8000) when unset."""

    extra_args: list[str] = Field(default_factory=list)
    """More `vllm serve` arguments, appended as given (e.g. `--max-model-len 131072`)."""


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown vLLM profile {name!r}; valid names: {', '.join(sorted(PROFILES))}"
        ) from None


def command(profile: Profile, config: ServeConfig | None = None) -> list[str]:
    config = config or ServeConfig()
    argv = ["vllm", "serve", profile.model, *profile.args]
    if config.host is not None:
        argv += ["--host", config.host]
    if config.port is not None:
        argv += ["--port", str(config.port)]
    return argv + config.extra_args


def shell_line(argv: list[str]) -> str:
    """The command as a shell would need it typed."""
    return shlex.join(argv)


def run(argv: list[str]) -> NoReturn:
    """Replace this process with `vllm serve ...`."""
    executable = shutil.which(argv[0])
    if executable is None:
        raise VllmNotInstalled(
            "the `vllm` command is not installed here; install it with "
            "`pip install 'autan[serving]'` on a machine with GPUs"
        )
    os.execv(executable, argv)
