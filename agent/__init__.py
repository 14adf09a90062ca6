"""The coding agent: step loop, tools, context budget, verification."""

from __future__ import annotations

from agent.base import Emit, Observation, Tool, ToolEnv
from agent.config import AgentConfig
from agent.context import Context
from agent.errors import (
    AgentError,
    BudgetExceeded,
    Cancelled,
    Finished,
    ModelFailed,
    RepoConfigInvalid,
    RunEnded,
    ToolFailed,
)
from agent.loop import Agent, RunResult, StepTiming
from agent.repo import RepoInfo, inspect
from agent.tools import TOOLS, make_tools, truncate
from agent.verify import TestRun, find_test_command, run_tests

__all__ = [
    "TOOLS",
    "Agent",
    "AgentConfig",
    "AgentError",
    "BudgetExceeded",
    "Cancelled",
    "Context",
    "Emit",
    "Finished",
    "ModelFailed",
    "Observation",
    "RepoConfigInvalid",
    "RepoInfo",
    "RunEnded",
    "RunResult",
    "StepTiming",
    "TestRun",
    "Tool",
    "ToolEnv",
    "ToolFailed",
    "find_test_command",
    "inspect",
    "make_tools",
    "run_tests",
    "truncate",
]
