"""Escape attempts against the kernel itself, run inside a sandbox; each prints one word a try."""

from __future__ import annotations

import platform

from tests.sandbox.attacks import TRY

# Syscall numbers where the generic table is not used (x86_64); aarch64 uses the generic one.
_NUMBERS = {
    "x86_64": {"keyctl": 250, "add_key": 248, "io_uring_setup": 425, "userfaultfd": 323,
               "bpf": 321, "perf_event_open": 298, "unshare": 272, "clone": 56, "mount": 165,
               "setns": 308, "init_module": 175, "kexec_load": 246, "open_tree": 428},
    "aarch64": {"keyctl": 219, "add_key": 217, "io_uring_setup": 425, "userfaultfd": 282,
                "bpf": 280, "perf_event_open": 241, "unshare": 97, "clone": 220, "mount": 40,
                "setns": 268, "init_module": 105, "kexec_load": 104, "open_tree": 428},
}  # fmt: skip
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000


def numbers() -> dict[str, int]:
    machine = platform.machine()
    if machine not in _NUMBERS:
        raise RuntimeError(f"no syscall numbers for {machine} in tests/sandbox/escapes.py")
    return _NUMBERS[machine]


# Every call a container runtime denies: each must fail with EPERM, whatever its arguments.
SYSCALLS = TRY + (
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "def call(nr, *args):\n"
    "    def go():\n"
    "        if libc.syscall(nr, *args) < 0:\n"
    "            raise OSError(ctypes.get_errno(), 'syscall')\n"
    "    return go\n"
    "n = {numbers!r}\n"
    "attempt(call(n['keyctl'], 0, -3, 0, 0, 0))\n"  # KEYCTL_GET_KEYRING_ID of the session
    "attempt(call(n['add_key'], b'user', b'k', b'v', 1, -3))\n"
    "attempt(call(n['io_uring_setup'], 1, ctypes.create_string_buffer(120)))\n"
    "attempt(call(n['userfaultfd'], 0))\n"
    "attempt(call(n['bpf'], 0, 0, 0))\n"
    "attempt(call(n['perf_event_open'], ctypes.create_string_buffer(128), 0, -1, -1, 0))\n"
    "attempt(call(n['unshare'], {newuser}))\n"
    "attempt(call(n['unshare'], {newns}))\n"
    "attempt(call(n['clone'], {newuser} | 17, 0, 0, 0, 0))\n"  # 17: SIGCHLD
    "attempt(call(n['clone'], {newcgroup} | 17, 0, 0, 0, 0))\n"
    "attempt(call(n['mount'], b'none', b'/tmp', b'tmpfs', 0, 0))\n"
    "attempt(call(n['setns'], 0, 0))\n"
    "attempt(call(n['init_module'], 0, 0, b''))\n"
    "attempt(call(n['kexec_load'], 0, 0, 0, 0))\n"
    "attempt(call(n['open_tree'], -100, b'/', 1))\n"
)


def syscalls() -> str:
    return SYSCALLS.format(
        numbers=numbers(), newuser=CLONE_NEWUSER, newns=CLONE_NEWNS, newcgroup=CLONE_NEWCGROUP
    )


# The escape: a core_pattern pipe runs as host root in the host's namespaces.
CORE_PATTERN = (
    "printf '#!/bin/sh\\ntouch {marker}\\n' > /workspace/evil; chmod +x /workspace/evil; "
    'echo "|/proc/%P/root/workspace/evil" > /proc/sys/kernel/core_pattern; '
    "echo core_pattern=$?; sh -c 'kill -SEGV $$'; true"
)

# Every sysctl the kernel would let this user write: none may open for writing.
SYSCTLS = TRY + (
    "opened = 0\n"
    "for top, dirs, files in os.walk('/proc/sys'):\n"
    "    for name in files:\n"
    "        try:\n"
    "            os.close(os.open(os.path.join(top, name), os.O_WRONLY))\n"
    "            opened += 1\n"
    "        except OSError:\n"
    "            pass\n"
    "print('writable', opened)\n"
    "for p in {masked!r}:\n"
    "    if os.path.exists(p):\n"
    "        print(p, len(open(p, 'rb').read(16)))\n"
)
MASKED = ["/proc/cmdline", "/proc/keys", "/proc/kcore", "/proc/timer_list", "/proc/sched_debug"]

# Lift the limits from inside: a user namespace of one's own, then cgroup v1 mounted in it.
LIFT = (
    "unshare -rmC sh -c 'mkdir -p /tmp/cg && mount -t cgroup -o pids none /tmp/cg "
    "&& echo max > /tmp/cg/pids.max' ; echo lift=$?"
)

# A CPU hog for `seconds` of wall time; prints the CPU seconds it got.
CPU_HOG = (
    "import os, time\n"
    "end = time.monotonic() + {seconds}\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
    "t = os.times()\n"
    "print(t.user + t.system)\n"
)
