"""Single sign-on through OpenID Connect: the provider's discovery document and keys, the
authorization code flow with PKCE, state and nonce, and the ID token checked against the keys
(signature, issuer, audience, expiry, nonce)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from web.config import WebSettings

DISCOVERY = "/.well-known/openid-configuration"
CALLBACK = "/login/sso/callback"
FRESH_S = 300.0
"""How long the discovery document and the keys are used before they are fetched again."""
LEEWAY_S = 60
"""Clock difference tolerated between the provider and the database."""
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
"""Signatures taken: the provider's public keys only, never a shared secret or `none`."""


class SignInFailed(Exception):
    """Raised when a single sign-on cannot finish: the provider is unreachable or refused, or
    its ID token does not hold. The message says which, for the person signing in."""


@dataclass(frozen=True)
class Started:
    """A sign-in sent to the provider: where to send the browser, and what to check on return."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass
class _Fetched:
    value: dict[str, Any]
    at: float


class Provider:
    """One OpenID Connect provider, as this dashboard's client; discovery and keys cached
    for FRESH_S, the keys fetched again at once when a token names one they lack."""

    def __init__(self, settings: WebSettings, *, timeout_s: float = 10.0) -> None:
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self.client_secret = secret.get_secret_value() if secret is not None else ""
        self.redirect_uri = settings.base_url.rstrip("/") + CALLBACK
        self.name = settings.oidc_name or urlsplit(self.issuer).hostname or self.issuer
        self.timeout_s = timeout_s
        self._metadata: _Fetched | None = None
        self._keys: _Fetched | None = None

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            self.client_id, self.client_secret, scope="openid email profile",
            redirect_uri=self.redirect_uri, code_challenge_method="S256", timeout=self.timeout_s,
        )  # fmt: skip

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInFailed(
                f"The sign-in provider could not be reached ({url}: {exc}). Try again later, "
                "or sign in with an API token."
            ) from exc
        if not isinstance(document, dict):
            raise SignInFailed(f"The sign-in provider sent no JSON object from {url}.")
        return document

    async def metadata(self) -> dict[str, Any]:
        """The discovery document, whose issuer must be the one configured (OIDC Discovery 4.3)."""
        if self._metadata is None or time.monotonic() - self._metadata.at > FRESH_S:
            document = await self._get(self.issuer.rstrip("/") + DISCOVERY)
            if document.get("issuer") != self.issuer:
                raise SignInFailed(
                    f"The provider's discovery document names issuer {document.get('issuer')!r}, "
                    f"not {self.issuer!r}: check AUTAN_OIDC_ISSUER."
                )
            for field in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(field), str):
                    raise SignInFailed(f"The provider's discovery document has no {field}.")
            self._metadata = _Fetched(document, time.monotonic())
        return self._metadata.value

    async def _key_set(self, *, again: bool = False) -> KeySet:
        if again or self._keys is None or time.monotonic() - self._keys.at > FRESH_S:
            self._keys = _Fetched(
                await self._get((await self.metadata())["jwks_uri"]), time.monotonic()
            )
        try:
            return KeySet.import_key_set(self._keys.value)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise SignInFailed(f"The provider's signing keys could not be read: {exc}") from exc

    async def start(self) -> Started:
        """A new sign-in: fresh state, nonce and PKCE verifier, and the provider's URL."""
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, code_verifier=verifier, nonce=nonce
            )
        return Started(url=url, state=state, nonce=nonce, verifier=verifier)

    async def finish(self, *, code: str, verifier: str, nonce: str, now: int) -> dict[str, Any]:
        """Trade the code for tokens and return the ID token's claims, once they hold."""
        endpoint = (await self.metadata())["token_endpoint"]
        try:
            async with self._client() as client:
                token = await client.fetch_token(endpoint, code=code, code_verifier=verifier)
        except OAuthError as exc:
            raise SignInFailed(
                f"The sign-in provider refused the code ({exc.error}: {exc.description}). "
                "Start again from the sign-in page."
            ) from exc
        except httpx.HTTPError as exc:
            raise SignInFailed(f"The sign-in provider could not be reached: {exc}") from exc
        if not isinstance(token.get("id_token"), str):
            raise SignInFailed("The sign-in provider sent no ID token: is the `openid` scope on?")
        return await self.verify(token["id_token"], nonce=nonce, now=now,
                                 access_token=token.get("access_token"))  # fmt: skip

    async def verify(
        self, id_token: str, *, nonce: str, now: int, access_token: str | None = None
    ) -> dict[str, Any]:
        """The ID token's claims: signed by one of the provider's keys, for this client, from
        this issuer, not expired, and carrying this sign-in's nonce."""
        registry = JWSRegistry(algorithms=ALGORITHMS)
        try:
            try:
                decoded = jwt.decode(id_token, await self._key_set(), registry=registry)
            except InvalidKeyIdError:  # the provider rotated its keys since they were fetched
                decoded = jwt.decode(id_token, await self._key_set(again=True), registry=registry)
            claims = CodeIDToken(
                decoded.claims, decoded.header,
                {"iss": {"essential": True, "value": self.issuer},
                 "aud": {"essential": True, "value": self.client_id},
                 "nonce": {"essential": True, "value": nonce}},
                {"nonce": nonce, "client_id": self.client_id, "access_token": access_token},
            )  # fmt: skip
            claims.validate(now=now, leeway=LEEWAY_S)
        except (JoseError, ValueError) as exc:
            raise SignInFailed(f"The provider's ID token was refused: {_why(exc)}.") from exc
        return dict(claims)


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
