"""What a push copied and checked, per target and host: state_dir/offsite/TARGET/HOST.json on
this server (`{"last_push": stamp, "objects": {name: {size, sha256, etag, storage_class,
mtime_ns}, or {"pruned": stamp} for what the target's retention removed}}`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.errors import OffsiteFailed
from agent.files import write_atomic
from agent.paths import ServerPaths


def ledger_file(paths: ServerPaths, target: str, host: str) -> Path:
    return paths.state_dir / "offsite" / target / f"{host}.json"


def read_ledger(paths: ServerPaths, target: str, host: str) -> dict[str, Any]:
    """What was pushed and checked: {"last_push": stamp, "objects": {name: {...}}}."""
    file = ledger_file(paths, target, host)
    try:
        ledger = json.loads(file.read_text())
    except FileNotFoundError:
        return {"last_push": None, "objects": {}}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise OffsiteFailed(
            f"the push ledger {file} is damaged",
            hint=f"remove {file}: the next push checks every object there again",
        ) from None
    if not isinstance(ledger, dict) or not isinstance(ledger.get("objects"), dict):
        raise OffsiteFailed(f"the push ledger {file} is damaged", hint=f"remove {file}")
    return ledger


def save_ledger(paths: ServerPaths, target: str, host: str, ledger: Mapping[str, Any]) -> None:
    file = ledger_file(paths, target, host)
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(file, json.dumps(ledger, indent=1, sort_keys=True) + "\n")
