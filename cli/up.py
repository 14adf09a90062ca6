"""`autan up`: a private Redis, migrations, an admin token, then the API and workers, supervised."""

from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx
import redis
from rich.console import Console

from cli import render
from cli.config import ADMIN_TOKEN_FILE
from cli.errors import SupervisorError
from cli.processes import Child, respawn, spawn, terminate
from integrations import connectors
from orchestrator.config import OrchestratorSettings
from orchestrator.models import utcnow
from orchestrator.services import Services
from orchestrator.tokens import create_token

GRACE_S = 10.0
"""How long a child has to stop after SIGTERM before it and its process group get SIGKILL."""
START_TIMEOUT_S = 60.0
SOCKET_PATH_MAX = 100
"""Unix socket paths longer than about 107 bytes cannot be bound at all."""
LOG_TAIL_LINES = 20
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Waits before restarting a child that died, by deaths in a row; the last one repeats."""
STABLE_S = 60.0
"""A child that lived this long before dying starts its back-off again from the first wait."""


class _Stopped(Exception):
    """A stop was asked for (Ctrl-C, SIGTERM) while starting."""


class Supervisor:
    """Starts everything one machine needs, watches it, and takes it all down together."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        *,
        host: str,
        port: int,
        workers: int,
        console: Console,
    ) -> None:
        data_dir = settings.data_dir.expanduser().resolve()
        self.settings = settings.model_copy(update={"data_dir": data_dir})
        self.data_dir = data_dir
        self.logs = data_dir / "logs"
        self.host, self.port, self.workers = host, port, workers
        self.console = console
        self.children: list[Child] = []
        self.redis: Child | None = None
        self.stop_signal: str | None = None
        self._lock: int | None = None
        self._up = False
        """Started: from then on a child that dies is restarted, not a reason to stop."""
        self._due: dict[str, float] = {}
        """Dead children's names -> when (monotonic) to start them again."""

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def probe_url(self) -> str:
        """Where this machine reaches the API: loopback when it listens on every address."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(self.host)
        return f"http://{host}:{self.port}" if host else self.url

    def run(self) -> int:
        """Start, supervise until a signal (0), stop; a child that dies once up is restarted
        with back-off (a death while starting is a SupervisorError)."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._start()
            while self.stop_signal is None:
                self._check_children()
                time.sleep(0.2)
        except _Stopped:
            pass
        finally:
            self._stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    def _on_signal(self, signum: int, _: FrameType | None) -> None:
        # Only a flag: the loops look at it; nothing here may block or take a lock.
        self.stop_signal = signal.Signals(signum).name

    # -- starting -------------------------------------------------------------------

    def _start(self) -> None:
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.logs.mkdir(mode=0o700, exist_ok=True)
        self._take_lock()
        self._check_port()
        if not self.settings.redis_url:
            self._start_redis()
        token_file = self.data_dir / ADMIN_TOKEN_FILE
        services = Services(self.settings)
        try:
            services.migrate()
            if ensure_admin_token(services, token_file):
                self._say(f"wrote a new admin token to {token_file}")
        finally:
            services.close()
        self._start_apps()
        self._wait_for("the API to answer /healthz", self._healthy)
        self._banner(token_file)
        self._up = True

    def _take_lock(self) -> None:
        self._lock = os.open(self.data_dir / "up.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SupervisorError(
                f"another `autan up` is running for {self.data_dir}: stop it first, "
                "or use another --data-dir"
            ) from exc

    def _check_port(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise SupervisorError(
                    f"cannot listen on {self.host}:{self.port} ({exc.strerror}): something "
                    "already uses it; stop it or choose another port with --port"
                ) from exc

    def _start_redis(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SupervisorError(
                "redis-server is not installed: run `make install`, "
                "or set AUTAN_REDIS_URL to a Redis you run"
            )
        sock = self.data_dir / "redis.sock"
        if len(str(sock)) > SOCKET_PATH_MAX:
            raise SupervisorError(
                f"the Redis socket path {sock} is too long for a Unix socket: "
                "use a shorter --data-dir, or set AUTAN_REDIS_URL"
            )
        sock.unlink(missing_ok=True)  # left by a crash; the lock says no live Redis owns it
        store = self.data_dir / "redis"
        store.mkdir(mode=0o700, exist_ok=True)
        # Append-only persistence: queued jobs and live streams outlast a restart, so work
        # resumes at once instead of after the reconciler's grace. The store stays the truth.
        argv = [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                "--dir", str(store), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--daemonize", "no"]  # fmt: skip
        self.redis = self._spawn("redis", argv, None)
        client = redis.Redis(unix_socket_path=str(sock), socket_connect_timeout=1)
        try:
            self._wait_for("redis-server to answer", lambda: _pings(client))
        finally:
            client.close()
        self._say(f"started redis (pid {self.redis.process.pid}) on {sock}")

    def _start_apps(self) -> None:
        env = dict(os.environ)
        env.update(
            AUTAN_DATA_DIR=str(self.data_dir),
            AUTAN_REDIS_URL=self.settings.resolved_redis_url,
            AUTAN_HOST=self.host,
            AUTAN_PORT=str(self.port),
            # One machine: its admin (the token this writes) may submit local checkouts.
            AUTAN_ALLOW_LOCAL_REPOS="true",
        )
        # -P: a package in the current directory must never shadow ours (a `web/` of the user's).
        api = [sys.executable, "-P", "-m", "uvicorn", "--factory", "web.app:create_app",
               "--host", self.host, "--port", str(self.port),
               "--timeout-graceful-shutdown", "5"]  # fmt: skip
        child = self._spawn("api", api, env)
        self._say(f"started the API (pid {child.process.pid})")
        for number in range(1, self.workers + 1):
            child = self._spawn(
                f"worker-{number}", [sys.executable, "-P", "-m", "cli", "worker"], env
            )
            self._say(f"started worker {number} (pid {child.process.pid})")

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None) -> Child:
        child = spawn(name, argv, self.logs / f"{name}.log", env)
        self.children.append(child)
        return child

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.probe_url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _wait_for(self, what: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            self._check_children()
            if self.stop_signal is not None:
                raise _Stopped
            if time.monotonic() > deadline:
                raise SupervisorError(
                    f"timed out after {START_TIMEOUT_S:.0f}s waiting for {what}; "
                    f"see the logs in {self.logs}"
                )
            time.sleep(0.05)

    def _banner(self, token_file: Path) -> None:
        self._say(
            f"Autan is up at {self.url}\n"
            f"  dashboard    {self.url}/\n"
            f"  admin token  {token_file}\n"
            f"  logs         {self.logs}\n"
            "Use the CLI from another shell:\n"
            f"  export AUTAN_URL={self.probe_url}\n"
            f'  export AUTAN_TOKEN="$(cat {shlex.quote(str(token_file))})"\n'
            '  autan run "what to do" --repo .\n'
            "Connectors (webhooks; `autan doctor` checks them):\n"
            + "".join(line + "\n" for line in connectors.lines(self._connectors()))
            + "Ctrl-C stops everything."
        )
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            self._say(
                f"warning: the API listens on {self.host} without TLS: put a TLS proxy in front"
            )

    def _connectors(self) -> list[connectors.ConnectorState]:
        """What the API's webhooks will do, from the environment it was given."""
        return connectors.Loaded.from_env(self.data_dir).states()

    # -- watching and stopping --------------------------------------------------------

    def _check_children(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.name in self._due:
                if now >= self._due[child.name]:
                    del self._due[child.name]
                    respawn(child)
                    self._note(f"started {child.name} again (pid {child.process.pid})")
                continue
            code = child.process.poll()
            if code is None:
                continue
            if not self._up:
                tail = child.tail(LOG_TAIL_LINES)
                render.console(stderr=True).print(tail, markup=False, highlight=False)
                raise SupervisorError(
                    f"{child.name} (pid {child.process.pid}) exited with status {code} while "
                    f"starting, so everything was stopped; its log is {child.log}"
                )
            self._schedule_restart(child, code, now)

    def _schedule_restart(self, child: Child, code: int, now: float) -> None:
        child.restarts = 1 if now - child.started >= STABLE_S else child.restarts + 1
        wait = BACKOFF_S[min(child.restarts, len(BACKOFF_S)) - 1]
        self._due[child.name] = now + wait
        self._note(
            f"{child.name} (pid {child.process.pid}) exited with status {code}; starting it "
            f"again in {wait:g}s (death {child.restarts} in a row); its log is {child.log}"
        )

    def _note(self, message: str) -> None:
        """Say it, and keep it in DATA_DIR/logs/up.log: why a child was restarted."""
        self._say(message)
        stamp = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        with (self.logs / "up.log").open("a") as log:
            log.write(f"{stamp} {message}\n")

    def _stop(self) -> None:
        if any(c.process.poll() is None for c in self.children):
            self._say(f"stopping ({self.stop_signal or 'on error'})")
        terminate([c for c in self.children if c is not self.redis], GRACE_S)
        if self.redis is not None:
            terminate([self.redis], GRACE_S)
            (self.data_dir / "redis.sock").unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None
        if self.children:
            self._say("stopped")

    def _say(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)


def ensure_admin_token(services: Services, path: Path) -> bool:
    """Create an admin token and write it to `path` (mode 0600) unless it is there already.

    The file is created 0600 (never readable by others, even for a moment) under a
    temporary name, the token is committed, then the file takes its real name.
    """
    if path.exists():
        return False
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out, services.sessions.begin() as session:
            out.write(create_token(session, name="admin", is_admin=True, now=utcnow()) + "\n")
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return True


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError):
        return False
