"""Typed errors of the provisioner. The base classes are the agent's (one definition):
each error carries one clear line and a hint for the CLI to print."""

from agent.errors import DupstackError, UsageError

__all__ = ["CloudError", "DupstackError", "NotFound", "StackFailed", "Timeout", "UsageError"]


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
