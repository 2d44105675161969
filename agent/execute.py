"""The one place where dupctl runs system commands.

Commands are argv tuples built elsewhere by pure functions. Secrets never go in argv:
they travel on stdin (`input`), which is never logged.
"""

from __future__ import annotations

import logging
import shlex
import shutil
import subprocess
from collections.abc import Sequence

from agent.errors import CommandFailed

logger = logging.getLogger(__name__)


def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    ok_codes: Sequence[int] = (0,),
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv`, capture its output; raise CommandFailed unless it exits with an ok code."""
    if shutil.which(argv[0]) is None:
        raise CommandFailed(
            f"{argv[0]} not found", hint="install it (the cloud-config lists every package)"
        )
    logger.debug("run: %s", shlex.join(argv))
    done = subprocess.run(argv, input=input, capture_output=True, check=False)
    if done.returncode not in ok_codes:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise CommandFailed(
            f"{shlex.join(argv)} exited {done.returncode}" + (f": {detail[-1]}" if detail else "")
        )
    return done
