"""Errors of the sandbox package.

SandboxError
 +-- BackendUnavailable
 +-- LimitsUnavailable
 +-- SandboxClosed
 +-- SandboxStartFailed
 +-- NetworkNotAllowed
 +-- PathOutsideSandbox
 +-- NotRegularFile
 +-- FileTooLarge
 +-- TreeError
      +-- TreeNotFound
           +-- RefNotFound
"""

from __future__ import annotations


class SandboxError(Exception):
    """Base of every error the sandbox package raises."""


class BackendUnavailable(SandboxError):
    """Raised when a backend cannot run here (a tool missing, namespaces disabled)."""


class LimitsUnavailable(SandboxError):
    """Raised when limits are required and no usable cgroup controller was found."""


class SandboxClosed(SandboxError):
    """Raised when a closed sandbox is used."""


class SandboxStartFailed(SandboxError):
    """Raised when a sandbox's namespace or mounts could not be set up."""


class NetworkNotAllowed(SandboxError):
    """Raised when a command asks for a network policy the operator has not allowed (`full`)."""


class PathOutsideSandbox(SandboxError):
    """Raised when a file path given to a sandbox would resolve outside its workspace."""


class NotRegularFile(SandboxError):
    """Raised when a host-side read meets a FIFO, socket, device or directory, not a file."""


class FileTooLarge(SandboxError):
    """Raised when a host-side read meets a file over the configured size bound."""


class TreeError(SandboxError):
    """Raised when a base tree cannot be fetched, checked out or snapshotted."""


class TreeNotFound(TreeError):
    """Raised when a remote, commit or local path named as a base does not exist."""


class RefNotFound(TreeNotFound):
    """Raised when a remote has no branch, tag or commit of the name a task gave as its ref."""
