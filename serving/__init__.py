"""Model access: OpenAI-compatible client, router, vLLM profiles, costs, a scripted model."""

from __future__ import annotations

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
