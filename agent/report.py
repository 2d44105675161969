"""What a setup command did, one line per step, printed as it goes (init, host add/remove)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Report:
    """Steps with what each found or changed; `changes` names the steps that changed."""

    say: Callable[[str], None]
    changes: list[str] = field(default_factory=list)

    def step(self, name: str, text: str, changed: bool) -> None:
        if changed:
            self.changes.append(name)
        self.say(f"  {name:<11} {text}")

    def summary(self, what: str, unchanged: str = "nothing changed") -> str:
        """`what: N change(s): a, b` or `what: nothing changed`."""
        if not self.changes:
            return f"{what}: {unchanged}"
        return f"{what}: {len(self.changes)} change(s): {', '.join(self.changes)}"
