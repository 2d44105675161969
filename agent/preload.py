"""Modules a command needs only at its end, imported in the background while it waits.

A backup imports ~80 ms of modules it needs only after its hosts' runs (prometheus_client for
the metrics, rich for the summary) and spends most of a run waiting on the host's duplicity.
Importing them then, not at start-up, takes them out of every run's fixed cost; importing
them during the SSH handshake would only slow that (the GIL). Python's import lock makes this
safe: an import of a module still loading here waits for it, and an import that failed here
fails again, with its error, where the module is used.
"""

from __future__ import annotations

import importlib
import threading

_wanted: list[str] = []
_lock = threading.Lock()


def want(*modules: str) -> None:
    """Ask for `modules` to be imported at the next wait (while_waiting)."""
    with _lock:
        _wanted.extend(modules)


def while_waiting() -> None:
    """Import what was wanted, in order, in a background thread (it never delays the exit)."""
    with _lock:
        modules = list(_wanted)
        _wanted.clear()
    if not modules:
        return

    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 - the import where it is used reports it
                continue

    threading.Thread(target=load, name="preload", daemon=True).start()
