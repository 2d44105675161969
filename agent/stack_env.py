"""/etc/dupstack/stack.env: what Heat told this server (volume id, mode, ssh user)."""

from __future__ import annotations

from pathlib import Path

MODES = ("create", "restore")  # DUPSTACK_MODE: a new stack, or one rebuilt from its volume


def read_stack_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of `path` ({} if missing); values Heat left as __TOKENS__ are dropped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    settings = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            value = value.strip()
            if value and not (value.startswith("__DUPSTACK_") and value.endswith("__")):
                settings[key.strip()] = value
    return settings
