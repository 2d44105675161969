"""The `dupctl` console script: one clear line when this install lacks the server's extras.

`pip install dupstack[provisioner]` on a user's machine installs the `dupctl` script too, but
not paramiko (the `remote` set): say what to install instead of a traceback.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from agent import cli, stop
    except ModuleNotFoundError as missing:
        return lacking(missing)
    stop.install()  # here, not in cli.main: a process that calls that keeps its own handler
    return cli.main()


def lacking(missing: ModuleNotFoundError) -> int:
    """Say which module is missing and what to install (a command loads most of them only
    when it runs); the exit code."""
    print(
        f"dupctl: error: this install lacks the backup server's dependencies "
        f"(no module {missing.name!r})",
        file=sys.stderr,
    )
    print(
        "dupctl: hint: dupctl runs on the backup server (stack-start installs it there); "
        "to run it here: pip install 'dupstack[remote,server]'",
        file=sys.stderr,
    )
    return 2
