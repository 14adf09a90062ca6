"""Attack programs run inside a sandbox; each prints what stopped it, one word per attempt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TRY = """
import errno, os, socket, sys
def attempt(fn):
    try:
        fn()
        print("ESCAPED")
    except OSError as e:
        print(errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__)
"""

CONNECT = TRY + "attempt(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=3))"

OUTSIDE = TRY + (
    "attempt(lambda: socket.getaddrinfo('example.com', 443))\n"
    "attempt(lambda: socket.create_connection(('1.1.1.1', 53), timeout=3))"
)

READ = TRY + (
    "for p in {paths!r}:\n"
    "    attempt(lambda: open(p, 'rb').read() if not os.path.isdir(p) else os.listdir(p))\n"
    "env = open('/proc/1/environ', 'rb').read()\n"
    "print('LEAK' if b'AUTAN_' in env else 'clean')"
)

WRITE = TRY + (
    "for p in ['/usr/evil', '/etc/evil', '/evil', '/proc/sysrq-trigger', "
    "'escape/usr/evil', '/dev/evil']:\n"
    "    attempt(lambda: open(p, 'w').write('x'))"
)

SYMLINK = TRY + (
    "attempt(lambda: open('escape/etc/shadow').read())\n"
    "attempt(lambda: os.listdir('escape/root'))\n"
    "open('escape/tmp/planted', 'w').write('x')\n"
    "print(sorted(os.listdir('escape/')) == sorted(os.listdir('/')))"
)

FORKS = """
import os
n = 0
try:
    while n < 10000:
        if os.fork() == 0:
            os.read(os.open('/dev/zero', os.O_RDONLY), 1)
            import signal; signal.pause()
        n += 1
except BlockingIOError:
    print('EAGAIN', n)
"""

MEMORY = "x = bytearray(512 << 20); print('ESCAPED', len(x))"

PTRACE = TRY + (
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "def trace():\n"
    "    if libc.ptrace(16, {pid}, 0, 0) != 0:\n"
    "        raise OSError(ctypes.get_errno(), 'ptrace')\n"
    "attempt(trace)\n"
    "attempt(lambda: os.kill({pid}, 0))"
)

TIOCSTI = TRY + (
    "import fcntl, termios\n"
    "for fd in (0, 1, 2):\n"
    "    attempt(lambda: fcntl.ioctl(fd, termios.TIOCSTI, b'x'))\n"
    "attempt(lambda: fcntl.ioctl(os.open('/dev/tty', os.O_RDWR), termios.TIOCSTI, b'x'))"
)

SPARSE = (
    "truncate -s 3G big3 && truncate -s 50G big50 && truncate -s 50G README.md && echo ok > small"
)

SPECIAL = TRY + (
    "os.mkfifo('pipe')\n"
    "os.remove('docs/guide.md'); os.mkfifo('docs/guide.md')\n"
    "socket.socket(socket.AF_UNIX).bind('sock')\n"
    "os.symlink('pipe', 'link')\n"
    "attempt(lambda: os.mknod('chr', 0o20644, os.makedev(1, 3)))\n"
    "attempt(lambda: os.mknod('blk', 0o60644, os.makedev(7, 0)))"
)

GIT_NAMES = (
    "mkdir -p .GIT/hooks sub/.git a .git && echo x > .GIT/hooks/post-checkout && "
    "echo '[core]' > sub/.git/config && echo z > a/.Git && echo top > .git/config && "
    "echo ok > fine.txt"
)


def cli(root: Path, base: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """`autan sandbox run` in a child process (the way an operator runs it)."""
    argv = [sys.executable, "-c", "from cli.sandbox import app; app()", "run"]
    argv += ["--base", str(base), "--root", str(root), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kwargs)  # type: ignore[call-overload,no-any-return]
