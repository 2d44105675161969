"""The user's passcode: read from a root-only file or stdin, never argv, never logged."""

from __future__ import annotations

import getpass
import os
import stat
import sys
from pathlib import Path

from agent.errors import PasscodeError
from agent.files import shred

STDIN = "-"
MIN_LENGTH = 12  # as the Heat templates require


def read_passcode(source: str | Path) -> str:
    """The passcode in `source` ('-': stdin, asked without echo on a terminal), without its line
    end; a file must be root's and unreadable by others."""
    if str(source) == STDIN:
        text = getpass.getpass("passcode: ") if sys.stdin.isatty() else sys.stdin.readline()
    else:
        path = Path(source)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise PasscodeError(
                f"no passcode: {path} does not exist",
                hint="cloud-init writes it at first boot and init removes it once used; "
                "give it on stdin: dupctl init --passcode-file -",
            ) from None
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PasscodeError(
                f"passcode file {path} is readable by others "
                f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o})",
                hint=f"chown root:root {path} && chmod 600 {path}",
            )
        text = path.read_text()
    passcode = text.rstrip("\r\n")
    if len(passcode) < MIN_LENGTH or "\n" in passcode:
        raise PasscodeError(f"the passcode must be one line of at least {MIN_LENGTH} characters")
    return passcode


def consume_passcode_file(source: str | Path) -> bool:
    """Shred the passcode file once init no longer needs it; True if there was one."""
    path = Path(source)
    if str(source) == STDIN or not path.exists():
        return False
    shred(path)
    return True
