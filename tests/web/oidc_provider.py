"""A local OpenID Connect provider for the tests: discovery, /authorize issuing codes for the
person it is told signs in, /token checking the client, the redirect URI and PKCE and taking each
code once, and a JWKS with an RSA key that signs the ID tokens. It records what it was sent, and
can be told to forge its next ID token (another key, other claims)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID, CLIENT_SECRET = "autan-dashboard", "s3cret-of-the-client"


@dataclass
class Grant:
    """A code issued by /authorize: what /token checks it against."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    claims: dict[str, Any]
    used: bool = False


@dataclass
class OidcProvider:
    """The provider's state: whom it signs in next, its codes, and what it was asked."""

    url: str = ""
    person: dict[str, Any] = field(default_factory=dict)
    """The claims of whoever signs in at /authorize next (sub, email, groups...)."""
    forge: dict[str, Any] = field(default_factory=dict)
    """Claims that replace the true ones in the ID tokens it signs."""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "k1"}))
    signing_key: RSAKey | None = None
    """Set: ID tokens are signed with this key instead, under the published key's id."""
    grants: dict[str, Grant] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """The OAuth error of each refused /token request, in order."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": self.url + "/authorize",
            "token_endpoint": self.url + "/token",
            "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str]]:
        """A redirect back with a code, or 400 for a request it does not take."""
        if (
            query.get("client_id") != CLIENT_ID
            or query.get("response_type") != "code"
            or query.get("code_challenge_method") != "S256"
            or not query.get("code_challenge")
            or "openid" not in query.get("scope", "").split()
        ):
            return 400, {}
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.grants[code] = Grant(
                CLIENT_ID, query["redirect_uri"], query["code_challenge"],
                query.get("nonce", ""), dict(self.person),
            )  # fmt: skip
        back = urlencode({"code": code, "state": query.get("state", "")})
        return 302, {"Location": f"{query['redirect_uri']}?{back}"}

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        self.token_requests.append(form)
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if authorization != f"Basic {basic}":
            return self._refuse("invalid_client")
        with self.lock:
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.used:
                return self._refuse("invalid_grant")  # unknown, or replayed
            grant.used = True
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        if challenge.rstrip(b"=").decode() != grant.challenge:
            return self._refuse("invalid_grant")
        if form.get("redirect_uri") != grant.redirect_uri or form.get("grant_type") != (
            "authorization_code"
        ):
            return self._refuse("invalid_grant")
        now = int(time.time())
        claims = {"iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300,
                  "nonce": grant.nonce, **grant.claims, **self.forge}  # fmt: skip
        header = {"alg": "RS256", "kid": self.key.kid}
        signed = jwt.encode(header, claims, self.signing_key or self.key)
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                     "expires_in": 300, "id_token": signed}  # fmt: skip

    def _refuse(self, error: str) -> tuple[int, dict[str, Any]]:
        self.refused.append(error)
        return 400, {"error": error, "error_description": f"{error} (from the stand-in)"}


def _handler(provider: OidcProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._send(200, provider.discovery(), {})
            elif parts.path == "/jwks":
                self._send(200, {"keys": [provider.key.as_dict(private=False)]}, {})
            elif parts.path == "/authorize":
                status, headers = provider.authorize(query)
                self._send(status, {}, headers)
            else:
                self._send(404, {"error": "not_found"}, {})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path != "/token":
                self._send(404, {"error": "not_found"}, {})
                return
            status, body = provider.token(form, self.headers.get("Authorization", ""))
            self._send(status, body, {"Cache-Control": "no-store"})

    return Handler


class ProviderServer:
    """The provider served over HTTP on a free loopback port, in a thread."""

    def __init__(self) -> None:
        self.provider = OidcProvider()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.provider))
        self.provider.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
