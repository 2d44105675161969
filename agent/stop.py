"""SIGTERM (systemd stopping the server, an operator's `kill`): every host run under way is
stopped as the quota watchdog stops one (its duplicity ended on the host, what it wrote
removed, its folder closed) and recorded as stopped; hosts not started yet are not started.
A second SIGTERM ends dupctl at once, as kill -9 would (the next run cleans up after it)."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

from agent.errors import Stopped

REQUESTED = threading.Event()


def install() -> None:
    """Handle SIGTERM so (in the main thread, before any run starts)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if REQUESTED.is_set():
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        REQUESTED.set()

    signal.signal(signal.SIGTERM, handler)


def stopped(what: str) -> Stopped:
    return Stopped(
        f"dupctl was stopped (SIGTERM): {what}",
        hint="run it again (cron does at the next scheduled time or catch-up); earlier sets "
        "are untouched",
    )
