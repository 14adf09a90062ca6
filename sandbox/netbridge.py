"""Runs inside a sandbox: a loopback port bridged to the platform's proxy socket, then the command.

Started as `python3 -I -S -c <this file> SOCKET PORT COMMAND...` by the sandbox; it listens on
127.0.0.1:PORT in the command's private network namespace, forks the bridge, and becomes the
command. The bridge dies with the namespace when the command ends. Keeps to the standard
library of any Python 3.8 or later, since it runs on the sandbox's own interpreter.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import sys
import threading

CHUNK = 1 << 16


def pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(CHUNK)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def carry(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=carry, args=(client, path), daemon=True).start()


def main(argv: list[str]) -> None:
    path, port, command = argv[1], int(argv[2]), argv[3:]
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    # Forked twice: the bridge is not the command's child (a command that waits for every
    # child it has would wait for it), but the namespace's init's, and dies with it.
    middle = os.fork()
    if middle == 0:
        if os.fork() == 0:
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            try:
                serve(listener, path)
            finally:
                os._exit(0)
        os._exit(0)
    os.waitpid(middle, 0)
    listener.close()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"{command[0]}: {exc.strerror}\n")
        os._exit(127 if exc.errno == errno.ENOENT else 126)


if __name__ == "__main__":
    main(sys.argv)
