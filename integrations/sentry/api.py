"""The few calls to Sentry's REST API: an issue's latest event, its comments."""

from __future__ import annotations

from typing import Any

import httpx

from integrations.config import secret
from integrations.errors import NotConfigured
from integrations.report_errors import by_status
from integrations.sentry.config import SentrySettings


class SentryApi:
    def __init__(self, settings: SentrySettings) -> None:
        self.settings = settings

    def _client(self) -> httpx.Client:
        if self.settings.token is None:
            raise NotConfigured("Sentry: set AUTAN_SENTRY_TOKEN")
        return httpx.Client(
            base_url=self.settings.api_url.rstrip("/") + "/api/0/",
            headers={"Authorization": f"Bearer {secret(self.settings.token)}"},
            timeout=10,
        )

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            with self._client() as client:
                response = client.request(method, path, json=body)
                response.raise_for_status()
                return response.json()
        except httpx.HTTPStatusError as exc:
            response = exc.response
            raise by_status(
                "Sentry", response.status_code, f"{method} {path}", response.headers
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise by_status("Sentry", None, f"{method} {path}: {exc}") from exc

    def latest_event(self, issue_id: str) -> dict[str, Any]:
        event: dict[str, Any] = self._call("GET", f"issues/{issue_id}/events/latest/")
        return event

    def comments(self, issue_id: str) -> list[dict[str, Any]]:
        notes: list[dict[str, Any]] = self._call("GET", f"issues/{issue_id}/comments/")
        return notes

    def comment(self, issue_id: str, text: str) -> None:
        self._call("POST", f"issues/{issue_id}/comments/", {"text": text})
