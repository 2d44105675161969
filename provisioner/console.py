"""Terminal output: results on stdout, progress and diagnostics on stderr."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

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


def plain_table(*columns: str, title: str | None = None) -> Table:
    """A table whose cells wrap rather than being cut (IDs and types must stay whole)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def add_plain_row(table: Table, *cells: object) -> None:
    """Add cells as plain text: text from the cloud may hold [brackets], never markup."""
    table.add_row(*(Text("-" if cell is None else str(cell)) for cell in cells))
