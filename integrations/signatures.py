"""HMAC-SHA256 webhook signatures, checked in constant time before anything is parsed."""

from __future__ import annotations

import hashlib
import hmac

from integrations.errors import SignatureInvalid


def sign(secret: str, body: bytes, prefix: str = "sha256=") -> str:
    """The signature a service sends for `body`: `prefix` + hex HMAC-SHA256."""
    return prefix + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, sent: str | None, *, header: str, prefix: str) -> None:
    """Raise SignatureInvalid unless `sent` is the signature of `body` under `secret`."""
    if not sent:
        raise SignatureInvalid(f"missing {header} header: the request is not signed")
    if not hmac.compare_digest(sign(secret, body, prefix).encode(), sent.strip().encode()):
        raise SignatureInvalid(
            f"{header} does not match the body: check that the webhook secret is the same "
            "on both sides"
        )
