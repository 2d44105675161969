"""Terminal output: results on stdout, progress and diagnostics on stderr."""

from __future__ import annotations

from rich.console import Console

from provisioner.stacks import StackEvent

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_event(event: StackEvent) -> None:
    """One line of stack progress on stderr, failures in red."""
    failed = event.status.endswith("FAILED")
    reason = f"  {event.reason}" if event.reason and event.reason != "state changed" else ""
    clock = event.time[11:19] or "--:--:--"
    line = f"  {clock}  {event.resource:24} {event.status}{reason}"
    err.print(line, style="red" if failed else None, markup=False)
