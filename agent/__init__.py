"""The coding agent: step loop, tools, context budget, verification."""

from __future__ import annotations

from agent.base import Emit, Observation, Tool, ToolEnv
from agent.baseline import Baseline, BaselineCache
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
from agent.testresults import TestReport
from agent.tools import TOOLS, make_tools, truncate
from agent.verify import Verdict, find_test_command, judge, run_tests

__all__ = [
    "TOOLS",
    "Agent",
    "AgentConfig",
    "AgentError",
    "Baseline",
    "BaselineCache",
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
    "TestReport",
    "Tool",
    "ToolEnv",
    "ToolFailed",
    "Verdict",
    "find_test_command",
    "inspect",
    "judge",
    "make_tools",
    "run_tests",
    "truncate",
]
