"""Run a command several times in a row, timing each run: `python bench/inarow.py SPEC`.

SPEC (JSON): argv, runs, times (where the list of each run's wall seconds goes) and
secret_fd (an inherited fd carrying a passphrase, or null; argv's `{fd}` is replaced by a
pipe of each run's own holding it). Each run starts in a later whole second than the one
before: duplicity names sets by whole seconds. Stdlib only, no `bench` import: the runner
starts it as the measured command (bench/fixedcost.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def drive(spec: dict[str, Any]) -> list[float]:
    """Run spec's argv `runs` times; each run's wall seconds."""
    argv = [str(arg) for arg in spec["argv"]]
    secret = None
    if spec["secret_fd"] is not None:
        with open(int(spec["secret_fd"]), "rb") as inherited:
            secret = inherited.read()
    times = []
    for _ in range(int(spec["runs"])):
        time.sleep(1.02 - time.time() % 1)  # into a new whole second
        fds: tuple[int, ...] = ()
        run = argv
        if secret is not None:
            read_fd, write_fd = os.pipe()
            os.write(write_fd, secret)  # a line: fits in the pipe's buffer
            os.close(write_fd)
            fds, run = (read_fd,), [arg.replace("{fd}", str(read_fd)) for arg in argv]
        started = time.perf_counter()
        try:
            subprocess.run(run, check=True, stdin=subprocess.DEVNULL, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        times.append(time.perf_counter() - started)
    return times


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    Path(spec["times"]).write_text(json.dumps(drive(spec)))
