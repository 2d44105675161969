"""Typed errors of the provisioner: each carries one clear line, a hint for the CLI to print,
and its exit code (README: Commands). The provisioner runs on the user's machine and imports
nothing of the agent (the server's package), so its error base is its own."""

from __future__ import annotations


class DupstackError(Exception):
    """An error the user can act on; `hint` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(DupstackError):
    """Bad command-line input."""

    exit_code = 2


class CloudError(DupstackError):
    """The cloud refused or failed an operation."""


class NotFound(DupstackError):
    """A named cloud resource does not exist."""

    exit_code = 3


class StackFailed(DupstackError):
    """A stack operation ended in a FAILED state."""

    exit_code = 4


class Timeout(DupstackError):
    """Waiting for the cloud took longer than allowed."""

    exit_code = 5


class Unsupported(CloudError):
    """The cloud lacks a feature the command needs (e.g. an old Keystone)."""


class ServerError(DupstackError):
    """The backup server could not be reached, or refused a step, over SSH."""
