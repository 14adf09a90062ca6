"""What a failed call to a service means for a report: refused for good, or worth a retry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import requests
from github import GithubException
from jira import JIRAError
from slack_sdk.errors import SlackApiError

from integrations.errors import (
    NotConfigured,
    PublishError,
    ServiceError,
    ServiceRefused,
    ServiceUnavailable,
)
from orchestrator.models import utcnow

TRANSIENT_STATUSES = (408, 429)
"""The 4xx answers that may pass: a timeout, and too many requests."""


def retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """A `Retry-After` header in seconds (a number or an HTTP date); None without one."""
    value = {str(k).lower(): v for k, v in (headers or {}).items()}.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(str(value)) - utcnow()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return None


def by_status(
    service: str, status: int | None, detail: Any, headers: Mapping[str, Any] | None = None
) -> ServiceError:
    """The error for an answer: None as the status means no answer came (the network)."""
    if status is None:
        return ServiceUnavailable(f"{service} could not be reached: {detail}")
    if status >= 500 or status in TRANSIENT_STATUSES:
        return ServiceUnavailable(f"{service} answered {status}: {detail}", retry_after(headers))
    return ServiceRefused(f"{service} answered {status}: {detail}")


@contextmanager
def calling(service: str) -> Iterator[None]:
    """Translate what the service's client raises into ServiceRefused or ServiceUnavailable."""
    try:
        yield
    except (ServiceRefused, ServiceUnavailable):
        raise
    except JIRAError as exc:
        headers = exc.response.headers if exc.response is not None else None
        raise by_status(service, exc.status_code, exc.text, headers) from exc
    except GithubException as exc:
        raise by_status(service, exc.status, exc.data, exc.headers) from exc
    except SlackApiError as exc:
        response = exc.response
        error = response.get("error")
        raise by_status(service, response.status_code, error, response.headers) from exc
    except httpx.HTTPStatusError as exc:
        response = exc.response
        raise by_status(
            service, response.status_code, response.text[:500], response.headers
        ) from exc
    except (httpx.HTTPError, requests.RequestException, OSError) as exc:
        raise by_status(service, None, exc) from exc
    except (NotConfigured, PublishError) as exc:
        # A setting to fix or a push git refused: asking again changes nothing.
        raise ServiceRefused(str(exc)) from exc
