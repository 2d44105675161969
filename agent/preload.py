"""Modules a command needs only later, imported in the background while it waits on hosts.

A backup spends its first ~0.2 s waiting on the network (the SSH handshake, the host's first
commands) and imports ~80 ms of modules it needs only at its end (prometheus_client for the
metrics, rich for the summary): imported meanwhile, they are not part of every run's fixed
cost. Python's import lock makes this safe: an import of a module still loading here waits
for it, and an import that fails here fails again, with its error, where it is needed.
"""

from __future__ import annotations

import importlib
import threading


def ahead(*modules: str) -> None:
    """Import `modules`, in order, in a background thread (it never delays the exit)."""

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 - the caller's own import reports it
                continue

    threading.Thread(target=load, name="preload", daemon=True).start()
