"""Model access: OpenAI-compatible client, router, vLLM profiles, costs, a scripted model."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serving.base import ChatModel, Completion, Message, ToolCall, ToolChoice, ToolSpec, Usage
    from serving.client import ClientConfig, OpenAIClient
    from serving.costs import CostsConfig, Meter, Price, PriceTable, Reading
    from serving.errors import (
        BadResponse,
        EndpointError,
        EndpointUnreachable,
        ModelOutage,
        ModelTimeout,
        NoEndpointAvailable,
        RateLimited,
        RequestRejected,
        ScriptInvalid,
        ServerFailed,
        ServingError,
        VllmNotInstalled,
        WaitStopped,
    )
    from serving.outage import OutageConfig, PatientModel
    from serving.router import EndpointConfig, Router, RouterConfig

# Imported on first use: `autan model serve` needs the profiles, not the HTTP client and router.
_HOMES = {
    "ChatModel": "base",
    "Completion": "base",
    "Message": "base",
    "ToolCall": "base",
    "ToolChoice": "base",
    "ToolSpec": "base",
    "Usage": "base",
    "ClientConfig": "client",
    "OpenAIClient": "client",
    "CostsConfig": "costs",
    "Meter": "costs",
    "Price": "costs",
    "PriceTable": "costs",
    "Reading": "costs",
    "BadResponse": "errors",
    "EndpointError": "errors",
    "EndpointUnreachable": "errors",
    "ModelOutage": "errors",
    "ModelTimeout": "errors",
    "NoEndpointAvailable": "errors",
    "RateLimited": "errors",
    "RequestRejected": "errors",
    "ScriptInvalid": "errors",
    "ServerFailed": "errors",
    "ServingError": "errors",
    "VllmNotInstalled": "errors",
    "WaitStopped": "errors",
    "OutageConfig": "outage",
    "PatientModel": "outage",
    "EndpointConfig": "router",
    "Router": "router",
    "RouterConfig": "router",
}

__all__ = [
    "BadResponse",
    "ChatModel",
    "ClientConfig",
    "Completion",
    "CostsConfig",
    "EndpointConfig",
    "EndpointError",
    "EndpointUnreachable",
    "Message",
    "Meter",
    "ModelOutage",
    "ModelTimeout",
    "NoEndpointAvailable",
    "OpenAIClient",
    "OutageConfig",
    "PatientModel",
    "Price",
    "PriceTable",
    "RateLimited",
    "Reading",
    "RequestRejected",
    "Router",
    "RouterConfig",
    "ScriptInvalid",
    "ServerFailed",
    "ServingError",
    "ToolCall",
    "ToolChoice",
    "ToolSpec",
    "Usage",
    "VllmNotInstalled",
    "WaitStopped",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'serving' has no attribute {name!r}")
    return getattr(importlib.import_module(f"serving.{_HOMES[name]}"), name)
