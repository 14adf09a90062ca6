"""The syscall filter every sandboxed command runs under, compiled once to BPF for bwrap.

Built with libseccomp (through pyseccomp) for the machine's own architecture from the same
list of names everywhere; a syscall of another ABI (i386 or x32 on x86_64) kills the process.
Denied calls fail with EPERM, as they do under Docker's default profile, so a build that
probes for a feature falls back instead of dying.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

import pyseccomp as seccomp

# What the OCI and Docker default profiles deny to a container without capabilities, and
# what the sandbox never needs: namespaces, mounts, keys, kernel modules, BPF, perf,
# userfaultfd, io_uring, clocks, swap, reboot, kexec, handles that bypass path checks.
DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "fanotify_init", "finit_module", "fsconfig", "fsmount", "fsopen",
    "fspick", "get_kernel_syms", "init_module", "io_uring_enter", "io_uring_register",
    "io_uring_setup", "ioperm", "iopl", "kexec_file_load", "kexec_load", "keyctl",
    "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "query_module", "quotactl", "quotactl_fd", "reboot", "request_key", "setns",
    "settimeofday", "stime", "swapoff", "swapon", "syslog", "sysfs", "_sysctl", "umount",
    "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)  # fmt: skip
# clone() may make threads and processes, never namespaces (flags are its first argument on
# x86_64 and aarch64). clone3 passes its flags in memory a filter cannot read: ENOSYS makes
# libc fall back to clone.
NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
# Pushing characters into a terminal's input (TIOCSTI) or the console (TIOCLINUX).
DENIED_IOCTLS = (0x5412, 0x541C)


def _add(flt: seccomp.SyscallFilter, action: int, name: str, *args: seccomp.Arg) -> None:
    if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0:
        return  # not a syscall on this architecture (vm86 on aarch64): nothing to deny
    flt.add_rule(action, name, *args)


@functools.cache
def program() -> bytes:
    """The filter as a BPF program, the form `bwrap --seccomp FD` reads."""
    flt = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    deny = seccomp.ERRNO(errno.EPERM)
    for name in DENIED:
        _add(flt, deny, name)
    for flag in NAMESPACE_FLAGS:
        _add(flt, deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    _add(flt, seccomp.ERRNO(errno.ENOSYS), "clone3")
    for request in DENIED_IOCTLS:
        _add(flt, deny, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


def program_fd() -> int:
    """A fresh readable fd holding the program, for one bwrap to read and close."""
    data = program()
    read, write = os.pipe()
    try:
        if len(data) > 65536:  # a pipe's buffer: larger would block the write
            raise RuntimeError(f"the seccomp program is {len(data)} bytes, past a pipe's buffer")
        os.write(write, data)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read
