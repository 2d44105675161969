"""The one place where dupctl runs system commands.

Commands are argv tuples built elsewhere by pure functions. Secrets never go in argv:
they travel on stdin (`input`) or in the environment (`env`), which are never logged.
Programs are looked up on PATH, then beside dupctl's Python (duplicity lives in its venv).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

from agent.errors import CommandFailed

logger = logging.getLogger(__name__)


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` (with `env` added to the environment), capture its output; raise
    CommandFailed unless it exits with an ok code."""
    search = os.pathsep.join((os.environ.get("PATH", os.defpath), os.path.dirname(sys.executable)))
    program = shutil.which(argv[0], path=search)
    if program is None:
        raise CommandFailed(
            f"{argv[0]} not found", hint="install it (the cloud-config lists every package)"
        )
    logger.debug("run: %s", shlex.join(argv))
    done = subprocess.run(
        [program, *argv[1:]],
        input=input,
        capture_output=True,
        check=False,
        env={**os.environ, **env} if env else None,
    )
    if done.returncode not in ok_codes:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise CommandFailed(
            f"{shlex.join(argv)} exited {done.returncode}" + (f": {detail[-1]}" if detail else "")
        )
    return done
