"""A pool of ready sandboxes per base tree, refilled in the background."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from sandbox import create_sandbox
from sandbox.base import Sandbox
from sandbox.config import SandboxConfig
from sandbox.errors import SandboxClosed

log = logging.getLogger(__name__)


class PoolConfig(BaseModel):
    """How many sandboxes wait ready for each base tree."""

    size: int = 2
    """Ready sandboxes kept per base once a base has been asked for (or warmed)."""


class SandboxPool:
    """`acquire(base)` hands out a ready sandbox at once when the base is warm; then refills."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        pool: PoolConfig | None = None,
        factory: Callable[[Path, SandboxConfig], Sandbox] = create_sandbox,
    ) -> None:
        self.config = config or SandboxConfig()
        self.pool = pool or PoolConfig()
        self._factory = factory
        self._ready: dict[Path, deque[Sandbox]] = {}
        self._lock = threading.Condition()
        self._closed = False
        self._refiller = threading.Thread(target=self._refill, name="sandbox-pool", daemon=True)
        self._refiller.start()

    def warm(self, base: Path) -> None:
        """Start keeping sandboxes ready for `base`."""
        with self._lock:
            self._ready.setdefault(base.resolve(), deque())
            self._lock.notify_all()

    def acquire(self, base: Path) -> Sandbox:
        """A ready sandbox over `base`, or a new one when none is ready; the caller closes it."""
        base = base.resolve()
        with self._lock:
            if self._closed:
                raise SandboxClosed("the sandbox pool is closed")
            ready = self._ready.setdefault(base, deque())
            sandbox = ready.popleft() if ready else None
            self._lock.notify_all()
        return sandbox if sandbox is not None else self._factory(base, self.config)

    def ready(self, base: Path) -> int:
        with self._lock:
            return len(self._ready.get(base.resolve(), ()))

    def _wanted(self) -> Path | None:
        for base, ready in self._ready.items():
            if len(ready) < self.pool.size:
                return base
        return None

    def _refill(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._closed or self._wanted() is not None)
                if self._closed:
                    return
                base = self._wanted()
            assert base is not None
            try:
                sandbox = self._factory(base, self.config)
            except Exception:
                log.exception("could not make a sandbox over %s for the pool", base)
                with self._lock:
                    self._ready.pop(base, None)  # stop retrying; the next acquire reports it
                continue
            with self._lock:
                if self._closed:
                    sandbox.close()
                    return
                self._ready.setdefault(base, deque()).append(sandbox)

    def close(self) -> None:
        """Close every ready sandbox; those handed out are their holders' to close."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            waiting = [s for ready in self._ready.values() for s in ready]
            self._ready.clear()
        self._refiller.join(timeout=30)
        for sandbox in waiting:
            sandbox.close()
