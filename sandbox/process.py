"""Running one host process to completion: output caps, streaming, timeout and cancellation."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.base import OnOutput

_POLL_S = 0.02  # how often a running command looks at its stop event and its deadline


@dataclass(frozen=True)
class Outcome:
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    truncated: bool
    timed_out: bool
    cancelled: bool


def _feed(pipe: object, data: bytes) -> None:
    assert hasattr(pipe, "write") and hasattr(pipe, "close")
    with contextlib.suppress(OSError):
        pipe.write(data)
    with contextlib.suppress(OSError):
        pipe.close()


def _drain(
    sel: selectors.BaseSelector,
    key: selectors.SelectorKey,
    buf: bytearray,
    limit: int,
    on_output: OnOutput | None,
) -> bool:
    """Read what is there; keep up to `limit` bytes; say whether some had to be dropped."""
    chunk = os.read(key.fd, 65536)
    if not chunk:
        sel.unregister(key.fileobj)
        return False
    room = limit - len(buf)
    dropped = len(chunk) > room
    chunk = chunk[: max(room, 0)]
    if chunk:
        buf.extend(chunk)
        if on_output is not None:
            on_output(key.data, chunk)
    return dropped


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout: float,
    output_limit: int,
    on_output: OnOutput | None = None,
    stops: Sequence[threading.Event] = (),
    cwd: str = "/",
    pass_fds: Sequence[int] = (),
) -> Outcome:
    """Run `argv` in a new session; on timeout or `stop`, SIGKILL its process group at once."""
    started = time.monotonic()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    return collect(
        proc,
        started=started,
        stdin=stdin,
        timeout=timeout,
        output_limit=output_limit,
        on_output=on_output,
        stops=stops,
    )


def collect(
    proc: subprocess.Popen[bytes],
    *,
    started: float,
    stdin: bytes | None,
    timeout: float,
    output_limit: int,
    on_output: OnOutput | None = None,
    stops: Sequence[threading.Event] = (),
) -> Outcome:
    """Feed `stdin` to `proc` (the leader of its own session, with piped output), read its
    output to the end and wait for it; `started` (monotonic) counts towards `timeout`."""
    if stdin is not None:
        threading.Thread(target=_feed, args=(proc.stdin, stdin), daemon=True).start()
    elif proc.stdin is not None:
        proc.stdin.close()
    assert proc.stdout is not None and proc.stderr is not None
    buffers = {"stdout": bytearray(), "stderr": bytearray()}
    truncated = timed_out = cancelled = False
    exited_at: float | None = None
    killed_at: float | None = None
    deadline = started + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        while sel.get_map():
            for key, _ in sel.select(_POLL_S):
                truncated |= _drain(sel, key, buffers[key.data], output_limit, on_output)
            now = time.monotonic()
            if killed_at is None:
                timed_out = now >= deadline
                cancelled = not timed_out and any(s.is_set() for s in stops)
                if timed_out or cancelled:
                    killed_at = now
                    kill_group(proc.pid)
            elif now - killed_at > 2.0:
                break  # killed, yet a process outside its group still holds the pipes
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            elif exited_at is not None and now - exited_at > 0.2:
                kill_group(proc.pid)  # it exited, but something it started holds the pipes
    proc.stdout.close()
    proc.stderr.close()
    code = proc.wait()
    return Outcome(
        exit_code=code,
        stdout=bytes(buffers["stdout"]),
        stderr=bytes(buffers["stderr"]),
        duration_s=time.monotonic() - started,
        truncated=truncated,
        timed_out=timed_out,
        cancelled=cancelled,
    )
