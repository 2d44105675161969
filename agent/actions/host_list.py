"""`dupctl host list`: the inventory's hosts and their pinned host keys."""

from __future__ import annotations

from typing import Any

from agent import remote
from agent.config.load import load_inventory
from agent.paths import ServerPaths


def list_hosts(paths: ServerPaths, ssh: remote.Ssh) -> list[dict[str, Any]]:
    """One entry per host (defaults merged), sorted by name; empty without an inventory."""
    if not paths.config_file.exists():
        return []
    hosts = []
    for name, host in sorted(load_inventory(paths).hosts.items()):
        key = remote.pinned_key(ssh, host)
        hosts.append(
            {
                "name": name,
                "address": host.address,
                "user": host.user,
                "port": host.port,
                "paths": list(host.paths),
                "excludes": list(host.excludes),
                "host_key": key.fingerprint if key else None,
            }
        )
    return hosts
