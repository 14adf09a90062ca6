"""`autan doctor`'s checks: each configured connector's token tried with one cheap API call,
and each GitHub repository in autan.toml looked up, against the service's own API base URL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx

from integrations.config import secret
from integrations.connectors import NAMES, Loaded


@dataclass(frozen=True)
class Check:
    connector: str
    what: str
    ok: bool
    detail: str = "ok"

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"  {mark} {NAMES[self.connector]:<8} {self.what}: {self.detail}"


def _tried(response: httpx.Response | str, what: str) -> str:
    """ "ok", or what went wrong with the call, saying what to look at."""
    if isinstance(response, str):
        return response
    if response.status_code in (401, 403):
        return f"{what} refused ({response.status_code}): check that it is current and its scopes"
    if response.status_code == 404:
        return "not found (404): check the name, and that the token may see it"
    if not response.is_success:
        return f"answered {response.status_code}"
    return "ok"


def _call(client: httpx.Client, method: str, url: str, **kw: object) -> httpx.Response | str:
    try:
        return client.request(method, url, **kw)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        return f"cannot reach {url} ({type(exc).__name__}): check the API base URL"


def _github(loaded: Loaded, client: httpx.Client) -> Iterator[Check]:
    settings, base = loaded.github, loaded.github.api_url.rstrip("/")
    if settings.token is None:
        if settings.app_id:
            yield Check("github", "token", True, "a GitHub App is set; its key is tried on use")
        else:
            yield Check("github", "token", False, "AUTAN_GITHUB_TOKEN is not set: no reports")
        return
    auth = {"Authorization": f"Bearer {secret(settings.token)}"}
    detail = _tried(_call(client, "GET", f"{base}/user", headers=auth), "the token")
    yield Check("github", "token", detail == "ok", detail)
    for name, repo in sorted(loaded.routing.repos.items()):
        if repo.github:
            found = _call(client, "GET", f"{base}/repos/{repo.github}", headers=auth)
            detail = _tried(found, "the token")
            yield Check("github", f"repository {name} ({repo.github})", detail == "ok", detail)


def _slack(loaded: Loaded, client: httpx.Client) -> Iterator[Check]:
    settings = loaded.slack
    if settings.bot_token is None:
        yield Check("slack", "bot token", True, "not set: answers go to the command's response_url")
        return
    url = settings.api_url.rstrip("/") + "/auth.test"
    answer = _call(
        client, "POST", url, headers={"Authorization": f"Bearer {secret(settings.bot_token)}"}
    )
    detail = _tried(answer, "the bot token")
    if detail == "ok" and isinstance(answer, httpx.Response):
        body = (
            answer.json()
            if answer.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if not body.get("ok"):
            detail = f"the bot token was refused: {body.get('error', 'no reason given')}"
    yield Check("slack", "bot token", detail == "ok", detail)


def _jira(loaded: Loaded, client: httpx.Client) -> Iterator[Check]:
    settings = loaded.jira
    missing = [
        f"AUTAN_JIRA_{name.upper()}"
        for name, value in (
            ("url", settings.url),
            ("email", settings.email),
            ("token", settings.token),
        )
        if not value
    ]
    if missing:
        yield Check("jira", "account", False, f"{', '.join(missing)} not set: no reports")
        return
    url = settings.url.rstrip("/") + "/rest/api/2/myself"
    answer = _call(client, "GET", url, auth=(settings.email, secret(settings.token)))
    detail = _tried(answer, "the email and token")
    yield Check("jira", "account", detail == "ok", detail)


def _sentry(loaded: Loaded, client: httpx.Client) -> Iterator[Check]:
    settings = loaded.sentry
    if settings.token is None:
        yield Check("sentry", "token", False, "AUTAN_SENTRY_TOKEN is not set: no reports")
        return
    url = settings.api_url.rstrip("/") + "/api/0/"
    answer = _call(
        client, "GET", url, headers={"Authorization": f"Bearer {secret(settings.token)}"}
    )
    detail = _tried(answer, "the token")
    yield Check("sentry", "token", detail == "ok", detail)


CHECKS = {"github": _github, "slack": _slack, "jira": _jira, "sentry": _sentry}


def checks(loaded: Loaded, client: httpx.Client) -> list[Check]:
    """Every check of every configured connector; connectors off or misconfigured are skipped
    (their state already says why)."""
    configured = [s.name for s in loaded.states() if s.state == "configured"]
    return [found for name in configured for found in CHECKS[name](loaded, client)]
