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


STAMP_DIGITS = 12
"""A Unix time in seconds has 10 digits until 2286; more is not a timestamp."""


def check_age(sent: str, *, header: str, now: float, limit: int) -> None:
    """Raise SignatureInvalid unless `sent` (header `header`) is a Unix time within `limit`
    seconds of `now`, either way: an old delivery is a replay, one from the future a clock."""
    if not (sent.isascii() and sent.isdigit() and len(sent) <= STAMP_DIGITS):
        raise SignatureInvalid(f"{header} is not a Unix time in seconds")
    ahead = int(sent) - now
    if ahead > limit:
        raise SignatureInvalid(
            f"{header} is from the future, {int(ahead)} s ahead of this "
            f"server's clock (more than {limit} s): check this server's clock"
        )
    if -ahead > limit:
        raise SignatureInvalid(
            f"{header} is {int(-ahead)} s old, more than {limit} s: "
            "a replay, or this server's clock is off"
        )
