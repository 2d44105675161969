"""`dupctl sets HOST`: every set of the host's chains, with the time that selects it
(agent/backup_sets.py reads them from the file names on the volume)."""

from __future__ import annotations

from typing import Any

from agent.backup_sets import chains_of, stored_files
from agent.config.load import load_inventory
from agent.paths import ServerPaths
from agent.repository import backups_dir


def host_sets(paths: ServerPaths, name: str) -> dict[str, Any]:
    """`name`'s chains, oldest first, and the sets that extend none (`orphaned`)."""
    host = load_inventory(paths).host(name)  # an unknown name is the usual error
    return {"host": name, **chains_of(stored_files(backups_dir(paths, host)))}
