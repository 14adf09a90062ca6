"""Requests signed the way each service documents it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

GITHUB_SECRET = "It's a Secret to Everybody"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
JIRA_SECRET = "jira-webhook-secret-0123456789"
SENTRY_SECRET = "sentry-client-secret-0123456789"


def hexmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def github(
    event: str, payload: Any, delivery: str | None = None, secret: str = GITHUB_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": "sha256=" + hexmac(secret, body),
        "Content-Type": "application/json",
    }


def slack(
    form: str, *, at: float | None = None, secret: str = SLACK_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = form.encode()
    stamp = str(int(at if at is not None else time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    return body, {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + hexmac(secret, base),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def jira(
    payload: Any, delivery: str | None = None, secret: str = JIRA_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "X-Atlassian-Webhook-Identifier": delivery or str(uuid.uuid4()),
        "X-Hub-Signature": "sha256=" + hexmac(secret, body),
        "Content-Type": "application/json",
    }


def sentry(
    resource: str, payload: Any, secret: str = SENTRY_SECRET
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {
        "Sentry-Hook-Resource": resource,
        "Sentry-Hook-Timestamp": str(int(time.time())),
        "Sentry-Hook-Signature": hexmac(secret, body),
        "Request-ID": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
