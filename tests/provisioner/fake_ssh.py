"""A stand-in for the user's `ssh` client: `ssh [OPTIONS] -- USER@HOST COMMAND`.

The backup server is a folder (FAKE_SSH_ROOT): the remote command, split as the server's
shell splits it, runs with its /etc/... paths inside that folder. Each call is logged to
FAKE_SSH_LOG (one JSON line: argv, stdin). FAKE_SSH_FAIL="CODE:MESSAGE" makes ssh itself
fail; FAKE_SSH_SUDO=password makes sudo want a password, as on a server whose sudo does.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

PROGRAMS = {"sed", "install", "rm"}


def _local(args: list[str], root: str) -> list[str]:
    """The remote arguments with server paths moved into the folder; chown options dropped
    (the server's sudo runs them as root, the test may not)."""
    local: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("-o", "-g"):
            skip = True
        else:
            local.append(root + arg if arg.startswith("/etc/") else arg)
    return local


def main() -> int:
    argv = sys.argv[1:]
    stdin = sys.stdin.read()
    with open(os.environ["FAKE_SSH_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    failure = os.environ.get("FAKE_SSH_FAIL")
    if failure:
        code, _, message = failure.partition(":")
        print(message, file=sys.stderr)
        return int(code)
    _destination, command = argv[argv.index("--") + 1 :]
    remote = shlex.split(command)
    if remote[:2] != ["sudo", "-n"] or remote[2] not in PROGRAMS:
        print(f"fake ssh: unexpected remote command {command!r}", file=sys.stderr)
        return 97
    if os.environ.get("FAKE_SSH_SUDO") == "password":
        print("sudo: a password is required", file=sys.stderr)
        return 1
    program, *args = remote[2:]
    result = subprocess.run(
        [program, *_local(args, os.environ["FAKE_SSH_ROOT"])],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
