"""Single sign-on through the real OpenID Connect flow, against a local provider over HTTP: a
person signs in, is made a user with the role autan.toml maps, and signs out; a forged ID token,
a replayed code and a wrong state are refused with a page saying why, and nothing is made."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import select

from orchestrator.models import ApiToken, AuditEntry, User
from orchestrator.services import Services
from tests.live import LiveApi, serve
from tests.web.dashboard import csrf_of
from tests.web.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider, ProviderServer
from web.config import WebSettings

ALICE = {"sub": "u-1", "email": "alice@acme.example", "email_verified": True, "groups": ["devs"]}
ROLES = """
[sso]
role_claim = "groups"

[sso.roles]
admin = ["autan-admins"]
member = ["devs"]
"""


@pytest.fixture
def idp() -> Iterator[OidcProvider]:
    server = ProviderServer()
    yield server.provider
    server.stop()


def _serve(services: Services, idp: OidcProvider, **settings: Any) -> LiveApi:
    fields = {"oidc_issuer": idp.url, "oidc_client_id": CLIENT_ID,
              "oidc_client_secret": CLIENT_SECRET, "signin_rate": "100/60", **settings}  # fmt: skip
    return serve(services, "", **fields)


@pytest.fixture
def app(services: Services, idp: OidcProvider) -> Iterator[LiveApi]:
    live = _serve(services, idp)
    yield live
    live.stop()


def _users(services: Services) -> dict[str, str]:
    with services.sessions() as session:
        return {u.name: u.role for u in session.scalars(select(User))}


def _audit(services: Services, action: str) -> list[tuple[str, str, int]]:
    with services.sessions() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action == action))
        return [(e.actor, e.outcome, e.status) for e in rows]


def sign_in(client: httpx.Client, app: LiveApi) -> httpx.Response:
    """The whole flow, following every redirect, as a browser would."""
    return client.get(f"{app.url}/login/sso", params={"next": "/tasks"}, follow_redirects=True)


def test_a_person_signs_in_is_made_a_viewer_and_signs_out(
    services: Services, idp: OidcProvider, app: LiveApi
) -> None:
    idp.person = ALICE
    with httpx.Client() as client:
        page = client.get(f"{app.url}/login")
        assert 'href="/login/sso?next=/tasks"' in page.text
        assert "Sign in with 127.0.0.1" in page.text and "Or use an API token" in page.text
        r = sign_in(client, app)
        assert r.status_code == 200 and r.url.path == "/tasks"
        assert [h.status_code for h in r.history] == [303, 302, 303]
        assert "alice@acme.example" in r.text
        # The provider was sent the PKCE verifier its challenge asked for (it checks it).
        assert idp.token_requests[0]["code_verifier"] and idp.refused == []
        assert _users(services) == {"alice@acme.example": "viewer"}  # no [sso.roles]: viewer
        with services.sessions() as session:
            token = session.scalars(select(ApiToken)).one()
        assert token.name == "sso" and token.revoked_at is None and token.expires_at
        assert token.scopes == ["tasks:read"]
        out = client.post(
            f"{app.url}/logout", data={"csrf": csrf_of(r.text)}, headers={"Origin": app.url}
        )
        assert out.status_code == 303 and "autan_session" not in client.cookies
        assert client.get(f"{app.url}/tasks").status_code == 303  # to /login
    with services.sessions() as session:
        assert session.scalars(select(ApiToken)).one().revoked_at is not None
    assert _audit(services, "signin") == [("alice@acme.example", "ok", 303)]
    assert _audit(services, "signout") == [("alice@acme.example", "ok", 303)]


def test_keys_the_provider_rotates_are_fetched_again(
    services: Services, idp: OidcProvider, app: LiveApi
) -> None:
    idp.person = ALICE
    with httpx.Client() as client:
        assert sign_in(client, app).status_code == 200  # the keys are fetched and kept
    idp.key = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    with httpx.Client() as client:
        assert sign_in(client, app).status_code == 200  # a key id it lacks: fetched again
    assert _audit(services, "signin") == [("alice@acme.example", "ok", 303)] * 2


def test_the_role_comes_from_the_group_mapping_at_every_sign_in(
    services: Services, idp: OidcProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "autan.toml").write_text(ROLES)
    monkeypatch.setenv("AUTAN_DATA_DIR", str(tmp_path / "config"))
    app = _serve(services, idp, oidc_name="Acme SSO")
    try:
        with httpx.Client() as client:
            assert "Sign in with Acme SSO" in client.get(f"{app.url}/login").text
            idp.person = ALICE
            assert sign_in(client, app).status_code == 200
        assert _users(services) == {"alice@acme.example": "member"}
        for groups, role in ((["devs", "autan-admins"], "admin"), (["sales"], "viewer")):
            idp.person = {**ALICE, "groups": groups}
            with httpx.Client() as client:
                assert sign_in(client, app).status_code == 200
            assert _users(services) == {"alice@acme.example": role}
    finally:
        app.stop()


def test_while_autan_toml_cannot_be_read_nobody_signs_in_with_a_guessed_role(
    services: Services, idp: OidcProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config" / "autan.toml").mkdir(parents=True)  # a directory: it cannot be read
    monkeypatch.setenv("AUTAN_DATA_DIR", str(tmp_path / "config"))
    idp.person = ALICE
    app = _serve(services, idp)
    try:
        with httpx.Client() as client:
            r = sign_in(client, app)
            assert r.status_code == 503
            assert "Sign-in waits while autan.toml cannot be read: cannot read" in r.text
            assert "autan_session" not in client.cookies
    finally:
        app.stop()
    assert _users(services) == {}


@pytest.mark.parametrize(
    ("forgery", "why"),
    [
        ("signature", "bad_signature"),
        ("audience", "&#39;aud&#39;"),
        ("expired", "expired"),
        ("nonce", "&#39;nonce&#39;"),
    ],
)
def test_a_forged_id_token_is_refused_and_nothing_is_made(
    services: Services, idp: OidcProvider, app: LiveApi, forgery: str, why: str
) -> None:
    idp.person = ALICE
    now = int(time.time())
    if forgery == "signature":
        idp.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    else:
        idp.forge = {"audience": {"aud": "another-client"},
                     "expired": {"exp": now - 3600, "iat": now - 7200},
                     "nonce": {"nonce": "a-nonce-of-another-sign-in"}}[forgery]  # fmt: skip
    with httpx.Client() as client:
        r = sign_in(client, app)
        assert r.status_code == 401 and r.url.path == "/login/sso/callback"
        assert "The provider&#39;s ID token was refused" in r.text
        assert why in r.text
        assert "autan_session" not in client.cookies
    assert _users(services) == {}
    with services.sessions() as session:
        assert session.scalars(select(ApiToken)).all() == []
    assert _audit(services, "signin") == [("anonymous", "refused", 401)]


def test_a_replayed_code_and_a_wrong_state_are_refused(
    services: Services, idp: OidcProvider, app: LiveApi
) -> None:
    idp.person = ALICE
    with httpx.Client() as client:
        to_idp = client.get(f"{app.url}/login/sso")
        assert to_idp.status_code == 303
        assert to_idp.headers["location"].startswith(idp.url + "/authorize?")
        assert "code_challenge_method=S256" in to_idp.headers["location"]
        back = client.get(to_idp.headers["location"]).headers["location"]
        # A state that is not this browser's sign-in: refused, and the real one stays usable.
        wrong = back.replace("state=", "state=x")
        r = client.get(wrong)
        assert r.status_code == 403 and "not started in this browser" in r.text
        assert client.get(back).status_code == 303
        again = client.get(back)  # the same callback, code and state, a second time
        assert again.status_code == 403 and "not started in this browser" in again.text
        # The code in a new sign-in of its own: the provider takes a code once.
        fresh = client.get(client.get(f"{app.url}/login/sso").headers["location"])
        old_code = back.split("code=")[1].split("&")[0]
        replay = (
            fresh.headers["location"].split("?")[0]
            + "?"
            + httpx.QueryParams(
                {"code": old_code, "state": httpx.URL(fresh.headers["location"]).params["state"]}
            ).__str__()
        )
        r = client.get(replay)
        assert r.status_code == 401
        assert "refused the code (invalid_grant" in r.text
        # Even with the state's cookie put back, the state was taken once.
        state = httpx.URL(back).params["state"]
        client.cookies.set("autan_sso_state", state, path="/login/sso/callback")
        again = client.get(back)
        assert again.status_code == 403 and "expired or was used already" in again.text
    assert idp.refused == ["invalid_grant"]
    assert _users(services) == {"alice@acme.example": "viewer"}  # the one true sign-in
    statuses = sorted(status for _, _, status in _audit(services, "signin"))
    assert statuses == [303, 401, 403, 403, 403]


def test_the_provider_refusing_or_sending_no_email_is_refused(
    services: Services, idp: OidcProvider, app: LiveApi
) -> None:
    idp.person = {**ALICE, "email_verified": False}
    with httpx.Client() as client:
        r = sign_in(client, app)
        assert r.status_code == 403 and "did not vouch for an email address" in r.text
        started = client.get(f"{app.url}/login/sso").headers["location"]
        state = httpx.URL(started).params["state"]
        r = client.get(
            f"{app.url}/login/sso/callback",
            params={"state": state, "error": "access_denied", "error_description": "no"},
        )
        assert r.status_code == 401 and "did not sign you in: access_denied (no)" in r.text
    assert _users(services) == {}


def test_the_sso_routes_keep_the_sign_in_guards(
    services: Services, idp: OidcProvider, admin_token: str
) -> None:
    idp.person = ALICE
    app = _serve(services, idp, signin_rate="2/60")
    try:
        with httpx.Client() as client:
            other = client.get(f"{app.url}/login/sso", headers={"Referer": "http://evil.example/"})
            assert other.status_code == 403 and "sent from another site" in other.text
            assert client.get(f"{app.url}/login/sso").status_code == 303
            assert client.get(f"{app.url}/login/sso").status_code == 303
            r = client.get(f"{app.url}/login/sso")
            assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
            assert "Too many sign-in attempts" in r.text
    finally:
        app.stop()
    assert _users(services) == {"admin": "admin"}


def test_without_a_provider_there_is_no_sso(services: Services, admin_token: str) -> None:
    app = serve(services, admin_token)
    try:
        with httpx.Client() as client:
            assert "Sign in with" not in client.get(f"{app.url}/login").text
            r = client.get(f"{app.url}/login/sso")
            assert r.status_code == 404 and "Single sign-on is not set up here" in r.text
    finally:
        app.stop()


def test_half_a_provider_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="set all three, or none"):
        WebSettings(oidc_issuer="https://idp.example", oidc_client_id="x")
    with pytest.raises(ValueError, match="placeholder"):
        WebSettings(oidc_issuer="https://i", oidc_client_id="x", oidc_client_secret="changeme")
