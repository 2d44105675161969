"""The one place where dupctl runs commands on this server, and the one result type that
local and remote runs share (agent/remote.py runs on tenant hosts with the same interface).

Commands are argv tuples built elsewhere by pure functions. A secret is never in an argv:
here it becomes PASSPHRASE in the command's environment (readable by root only), on a host
it travels on stdin. `stable` fixes time zone and language, so that output parses the same
anywhere. Programs are looked up on PATH, then beside dupctl's Python (duplicity lives in
its venv). Output is text; bytes that are not UTF-8 survive as surrogate escapes.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from agent.duplicity.common import STABLE_OUTPUT_ENV, environment
from agent.errors import CommandFailed

logger = logging.getLogger(__name__)
ANY_EXIT = range(256)  # the caller reads the exit code (duplicity's: agent/duplicity/exit_codes)


@dataclass(frozen=True)
class Result:
    """How a command ended, here or on a host."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def said(self, lines: int = 1) -> str:
        """Its last `lines` non-blank lines of stderr, joined by " / " ("" if none): what a
        failed command said, in one line of an error."""
        found = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return " / ".join(found[-lines:])


class Runner(Protocol):
    """Runs argv here (Local) or on a tenant host (remote.Session), alike."""

    def run(
        self,
        argv: Sequence[str],
        *,
        secret: str | None = None,
        input: str | None = None,
        log: IO[str] | None = None,
        timeout: float | None = None,
        ok_codes: Sequence[int] = (0,),
        stable: bool = False,
    ) -> Result: ...


def decode(data: bytes) -> str:
    return data.decode("utf-8", errors="surrogateescape")


class Local:
    """This server."""

    def run(
        self,
        argv: Sequence[str],
        *,
        secret: str | None = None,
        input: str | None = None,
        log: IO[str] | None = None,
        timeout: float | None = None,
        ok_codes: Sequence[int] = (0,),
        stable: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> Result:
        """Run `argv`, capture its output (and append it to `log`); CommandFailed unless it
        exits with an ok code. `env` adds variables (never logged)."""
        search = os.pathsep.join(
            (os.environ.get("PATH", os.defpath), os.path.dirname(sys.executable))
        )
        program = shutil.which(argv[0], path=search)
        if program is None:
            raise CommandFailed(
                f"{argv[0]} not found", hint="install it (the cloud-config lists every package)"
            )
        extra = {
            **(STABLE_OUTPUT_ENV if stable else {}),
            **(env or {}),
            **(environment(secret) if secret is not None else {}),  # stable output too
        }
        logger.debug("run: %s", shlex.join(argv))
        # Its own session: Ctrl-C reaches dupctl only, which passes it on and waits, so that
        # the command (duplicity, the installer) cleans up before dupctl exits.
        process = subprocess.Popen(
            [program, *argv[1:]],
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **extra} if extra else None,
            start_new_session=True,
            umask=0o077 if secret is not None else -1,  # duplicity's cache: root's alone
        )
        try:
            stdout, stderr = process.communicate(
                input.encode() if input is not None else None, timeout=timeout
            )
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGTERM)
            process.communicate()
            raise CommandFailed(f"{shlex.join(argv)} timed out after {timeout:g} s") from None
        except KeyboardInterrupt:
            _signal_group(process.pid, signal.SIGINT)
            process.communicate()
            raise
        result = Result(process.returncode, decode(stdout), decode(stderr))
        if log is not None:
            log.write(result.output)
        if result.exit_code not in ok_codes:
            detail = result.stderr.strip().splitlines()
            raise CommandFailed(
                f"{shlex.join(argv)} exited {result.exit_code}"
                + (f": {detail[-1]}" if detail else "")
            )
        return result


def _signal_group(pid: int, signal_number: int) -> None:
    """Pass a signal on to a command's process group (gone already: nothing to do)."""
    try:
        os.killpg(pid, signal_number)
    except ProcessLookupError:
        pass


def head_of_output(argv: Sequence[str], *, input: str, keep: int) -> tuple[int, bytes]:
    """(exit code, the first `keep` bytes of stdout) of `argv`, the rest of its output read
    and dropped as it comes: for output that may be far larger than memory."""
    process = subprocess.Popen(
        list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(input.encode())
    process.stdin.close()
    head = b""
    while chunk := process.stdout.read(1 << 16):
        if len(head) < keep:
            head += chunk[: keep - len(head)]
    return process.wait(), head


LOCAL = Local()


def run(argv: Sequence[str], **options: object) -> Result:
    """`argv` on this server (see Local.run)."""
    return LOCAL.run(argv, **options)  # type: ignore[arg-type]
