"""A chat-completions client for any OpenAI-compatible endpoint (vLLM, Mistral's API, others)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import BaseModel, Field, SecretStr

from serving import mistral
from serving.base import Completion, Message, ToolChoice, ToolSpec
from serving.errors import (
    BadResponse,
    EndpointError,
    EndpointUnreachable,
    ModelTimeout,
    RateLimited,
    RequestRejected,
    ServerFailed,
)
from serving.wire import StreamAssembler, message_from_wire, request_body, usage_from_wire

RETRIED_TRANSPORT_ERRORS = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
"""Failures before a reply began; a read timeout is not among them (the model may be busy)."""


class ClientConfig(BaseModel):
    """Where an endpoint is and how patiently to talk to it."""

    base_url: str
    """The endpoint's OpenAI base URL, ending in `/v1` (e.g. `http://gpu1:8000/v1`)."""

    model: str
    """Model name sent with each request, as `GET /v1/models` lists it."""

    api_key: SecretStr | None = None
    """Bearer token, if the endpoint wants one; never logged, and redacted from errors."""

    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Time to open a connection."""

    read_timeout_s: float = Field(default=300.0, gt=0)
    """Longest silence while waiting for the reply (or between streamed chunks)."""

    max_retries: int = Field(default=4, ge=0)
    """Retries after a connection error, a 429 or a 5xx; other 4xx are never retried."""

    backoff_base_s: float = Field(default=0.5, ge=0)
    """First back-off; it doubles on each retry, with full jitter."""

    backoff_max_s: float = Field(default=20.0, ge=0)
    """Longest back-off between two tries."""

    retry_after_max_s: float = Field(default=60.0, ge=0)
    """Longest `Retry-After` honoured; a longer one is cut to this."""

    mistral_compat: bool = True
    """Rewrite tool-call ids to 9 alphanumerics and bridge tool -> user (see serving/mistral.py)."""


def retry_delay(
    retry: int, retry_after: str | None, config: ClientConfig, rng: random.Random
) -> float:
    """Seconds before retry `retry` (0-based): Retry-After if given, else jittered back-off."""
    if retry_after is not None:
        try:
            return min(max(float(retry_after), 0.0), config.retry_after_max_s)
        except ValueError:
            pass  # an HTTP date: rare from model servers; fall back to back-off
    ceiling = min(config.backoff_max_s, config.backoff_base_s * 2**retry)
    return rng.uniform(0, ceiling)


def redact(text: str, secret: SecretStr | None) -> str:
    if secret is None or not secret.get_secret_value():
        return text
    return text.replace(secret.get_secret_value(), "[REDACTED]")


class OpenAIClient:
    """Implements ChatModel over HTTP; one httpx connection pool per client."""

    def __init__(self, config: ClientConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()
        headers = {}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        timeout = httpx.Timeout(config.read_timeout_s, connect=config.connect_timeout_s)
        self._http = httpx.Client(base_url=config.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root_url(self) -> str:
        """The server's root, where vLLM answers `/health`: the base URL without `/v1`."""
        base = self.config.base_url.rstrip("/")
        return base.removesuffix("/v1")

    def health(self, timeout: float = 5.0) -> int:
        """Status of `GET /health` at the server's root; raises EndpointUnreachable."""
        try:
            return self._http.get(f"{self.root_url}/health", timeout=timeout).status_code
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def models(self, timeout: float = 5.0) -> list[str]:
        """The ids `GET /v1/models` lists; raises EndpointUnreachable or an EndpointError."""
        with self._send("GET", "models", None, stream=False, timeout=timeout) as response:
            data = response.json()
        entries = data.get("data") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise BadResponse(f"GET /v1/models answered without a `data` list: {str(data)[:200]}")
        return [str(e.get("id")) for e in entries if isinstance(e, dict)]

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
    ) -> Completion:
        sent, restore = self._prepare(messages)
        body = request_body(
            self.config.model, sent, tools=tools, tool_choice=tool_choice,
            max_tokens=max_tokens, stream=False,
        )  # fmt: skip
        started = time.perf_counter()
        with self._send("POST", "chat/completions", body, stream=False) as response:
            try:
                data = response.json()
            except ValueError as exc:
                raise BadResponse(f"the endpoint answered non-JSON: {response.text[:200]}") from exc
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise BadResponse(f"the endpoint answered without choices: {str(data)[:200]}")
        message = message_from_wire(choices[0].get("message"))
        return Completion(
            message=mistral.restore_ids(message, restore),
            finish_reason=str(choices[0].get("finish_reason") or ""),
            usage=usage_from_wire(data.get("usage")),
            model=str(data.get("model") or self.config.model),
            total_s=time.perf_counter() - started,
            endpoint=self.config.base_url,
        )

    def stream(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        tool_choice: ToolChoice = "auto",
        max_tokens: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        sent, restore = self._prepare(messages)
        body = request_body(
            self.config.model, sent, tools=tools, tool_choice=tool_choice,
            max_tokens=max_tokens, stream=True,
        )  # fmt: skip
        started = time.perf_counter()
        first: float | None = None
        assembler = StreamAssembler()
        with self._send("POST", "chat/completions", body, stream=True) as response:
            for chunk in self._events(response):
                if first is None:
                    first = time.perf_counter() - started
                text = assembler.add(chunk)
                if text and on_text is not None:
                    on_text(text)
        return Completion(
            message=mistral.restore_ids(assembler.message(), restore),
            finish_reason=assembler.finish_reason,
            usage=assembler.usage,
            model=assembler.model or self.config.model,
            total_s=time.perf_counter() - started,
            first_token_s=first,
            endpoint=self.config.base_url,
        )

    def _prepare(self, messages: Sequence[Message]) -> tuple[list[Message], dict[str, str]]:
        if not self.config.mistral_compat:
            return list(messages), {}
        normalized = mistral.normalize(messages)
        return normalized.messages, normalized.restore

    def _events(self, response: httpx.Response) -> Iterator[Any]:
        """Parsed `data:` payloads of an SSE stream, up to `[DONE]`."""
        done = False
        try:
            for line in response.iter_lines():
                if done or not line.startswith("data:"):
                    continue  # comments, separators; after [DONE] read on: keeps the connection
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    continue
                try:
                    yield json.loads(payload)
                except ValueError as exc:
                    raise BadResponse(f"the endpoint streamed bad JSON: {payload[:200]}") from exc
        except httpx.TimeoutException as exc:
            raise self._timeout(exc) from exc
        except httpx.TransportError as exc:
            raise self._unreachable(exc, "the stream broke off") from exc

    @contextmanager
    def _send(
        self, method: str, path: str, body: dict[str, Any] | None, *, stream: bool,
        timeout: float | None = None,
    ) -> Iterator[httpx.Response]:  # fmt: skip
        """One request with retries; yields the 2xx response (streamed or read)."""
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        if timeout is not None:
            kwargs["timeout"] = timeout
        retry = 0
        while True:
            retry_after: str | None = None
            try:
                request = self._http.build_request(method, path, **kwargs)
                response = self._http.send(request, stream=stream)
            except httpx.ReadTimeout as exc:
                raise self._timeout(exc) from exc
            except RETRIED_TRANSPORT_ERRORS as exc:
                if retry >= self.config.max_retries:
                    raise self._unreachable(exc) from exc
            else:
                if response.is_success:
                    try:
                        yield response
                    finally:
                        response.close()
                    return
                error = self._status_error(response)
                if isinstance(error, RequestRejected) or retry >= self.config.max_retries:
                    raise error
                retry_after = response.headers.get("retry-after")
            time.sleep(retry_delay(retry, retry_after, self.config, self._rng))
            retry += 1

    def _status_error(self, response: httpx.Response) -> EndpointError:
        """The error for a non-2xx answer, with the endpoint's own reason in it."""
        try:
            response.read()
            detail = redact(response.text[:500], self.config.api_key)
        except httpx.TransportError:
            detail = "(the body could not be read)"
        finally:
            response.close()
        status = response.status_code
        where = f"{response.request.method} {response.request.url.path}"
        if status == 429:
            return RateLimited(f"{where} is rate-limited (429): {detail}", status=status)
        if status >= 500:
            return ServerFailed(f"{where} failed on the server ({status}): {detail}", status=status)
        hint = " Check the API key." if status in (401, 403) else ""
        return RequestRejected(f"{where} was refused ({status}): {detail}{hint}", status=status)

    def _unreachable(self, exc: Exception, what: str = "cannot be reached") -> EndpointUnreachable:
        reason = redact(str(exc) or type(exc).__name__, self.config.api_key)
        return EndpointUnreachable(
            f"the model endpoint {self.config.base_url} {what}: {reason}. "
            "Is the server up, and is the URL right?"
        )

    def _timeout(self, exc: Exception) -> ModelTimeout:
        return ModelTimeout(
            f"the model endpoint {self.config.base_url} sent nothing for "
            f"{self.config.read_timeout_s:g}s ({type(exc).__name__}); "
            "raise read_timeout_s if the model is just slow"
        )
