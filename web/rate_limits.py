"""A small rate limiter on Redis: so many hits per window for each key (an address, a token's
prefix), counted in Redis so every API replica shares the count and Redis's clock runs it."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

KEY_PREFIX = "autan:rate:"
TOKEN_PREFIX_LENGTH = 16
"""How much of a token names its bucket: enough to tell tokens apart, far too little to use."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Rate:
    """`count` hits per `per_s` seconds, written "COUNT/SECONDS" (10/60)."""

    count: int
    per_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        count, _, per_s = text.partition("/")
        if not (count.strip().isdigit() and per_s.strip().isdigit()):
            raise ValueError(f"a rate is COUNT/SECONDS, like 10/60; not {text!r}")
        rate = cls(int(count), int(per_s))
        if rate.count < 1 or rate.per_s < 1:
            raise ValueError(f"a rate needs a count and seconds of at least 1; not {text!r}")
        return rate


class RateLimiter:
    """Counts hits per key in fixed windows; each key's window starts at its first hit."""

    def __init__(self, client: aioredis.Redis, name: str, rate: Rate) -> None:
        self.client, self.name, self.rate = client, name, rate

    async def hit(self, *keys: str) -> int | None:
        """Count one hit on every key; the seconds to wait when any is over its rate, else None."""
        names = [
            KEY_PREFIX + self.name + ":" + hashlib.sha256(key.encode()).hexdigest()[:32]
            for key in keys
        ]
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.incr(name)
                pipe.expire(name, self.rate.per_s, nx=True)
                pipe.ttl(name)
            replies = await pipe.execute()
        waits = [
            max(1, ttl)
            for count, _, ttl in zip(replies[::3], replies[1::3], replies[2::3], strict=True)
            if count > self.rate.count
        ]
        return max(waits) if waits else None


def token_prefix(token: str) -> str:
    return token.strip()[:TOKEN_PREFIX_LENGTH]


def bearer_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token if scheme.lower() == "bearer" else None
    return None


class WriteLimits:
    """Limits the JSON API's state-changing requests per client address and per token prefix.

    A Redis that cannot count lets the request through: the limiter guards against floods,
    and the route itself answers 503 when it needs Redis.
    """

    def __init__(self, app: ASGIApp, *, rate: Rate) -> None:
        self.app, self.rate = app, rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or not scope["path"].startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        keys = ["address:" + (client[0] if client else "")]
        token = bearer_of(scope)
        if token:
            keys.append("token:" + token_prefix(token))
        limiter = RateLimiter(scope["app"].state.live_redis, "write", self.rate)
        try:
            wait = await limiter.hit(*keys)
        except RedisError as exc:
            log.warning("rate limits not counted (Redis: %s); letting the request through", exc)
            wait = None
        if wait is not None:
            detail = f"too many changes from this address or token; retry in {wait} s"
            response = JSONResponse(
                {"detail": detail}, status_code=429, headers={"Retry-After": str(wait)}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
