"""Settings of one agent run: budgets, context window, tool limits."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AgentConfig(BaseModel):
    """How long an agent may work and how much it sees; one per attempt."""

    max_steps: int = Field(default=50, ge=1)
    """Model calls before the run ends with the `steps` budget."""

    max_tokens: int = Field(default=2_000_000, ge=1)
    """Prompt plus completion tokens of all calls before the run ends with `tokens`."""

    max_cost_usd: float = Field(default=5.0, ge=0)
    """Dollars (from the price table) before the run ends with `cost`."""

    max_wall_s: float = Field(default=1800.0, gt=0)
    """Seconds of wall time before the run ends with `wall_time`."""

    reply_max_tokens: int | None = Field(default=4096, ge=1)
    """Longest reply asked of the model (`max_tokens` of each request)."""

    context_window: int = Field(default=128_000, ge=1024)
    """The model's context window in tokens."""

    compact_at: float = Field(default=0.8, gt=0, le=1)
    """Compact the conversation when it reaches this share of the window."""

    keep_steps: int = Field(default=6, ge=1)
    """Latest steps (a reply and its observations) kept whole when compacting."""

    command_timeout_s: float = Field(default=300.0, gt=0)
    """Longest a `bash` command may run; the model may ask for less."""

    output_chars: int = Field(default=12_000, ge=200)
    """Characters of one tool result the model sees; the middle of a longer one is cut."""

    event_chars: int = Field(default=4_000, ge=100)
    """Characters of one tool result put into a `tool.output` event."""

    map_entries: int = Field(default=200, ge=0)
    """Paths listed in the repository map of the system prompt."""

    instructions_chars: int = Field(default=8_000, ge=0)
    """Characters of AGENTS.md and .autan.toml shown in the system prompt."""

    test_timeout_s: float = Field(default=600.0, gt=0)
    """Longest the verification run of the tests may take."""

    env: dict[str, str] = Field(
        default_factory=lambda: {
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTEST_ADDOPTS": "-p no:cacheprovider",
        }
    )
    """Environment of every command in the sandbox (keeps caches out of the diff)."""

    path: list[str] = Field(default_factory=list)
    """Directories put first on PATH inside the sandbox (a toolchain such as a venv's bin)."""
