"""What the backup and status tests add to fleet/backup.py (backup_server...).

bs = backup_server(fleet)
web1 = tenant(fleet, "web1")          # /home/app backed up, host added
dupctl(bs, "backup", "web1")
"""

from __future__ import annotations

import json
from typing import Any

from agent.duplicity.common import Repository
from agent.duplicity.restore import restore_command
from agent.host_passphrase import host_passphrase
from agent.remote import EXPORT_FIRST_LINE
from fleet import Fleet, Host
from fleet import backup as shared
from fleet.backup import dupctl

DATA = "/home/app"  # overlaid in each host: writes stay in the fleet's folder


def tenant(fleet: Fleet, name: str, files: int = 20) -> Host:
    """A tenant with `files` small files under DATA, added with DATA to back up."""
    host = shared.tenant(fleet, fleet.hosts["bs"], name)
    write_files(host, files, "v1")
    shared.set_host_options(fleet.hosts["bs"], name, paths=[DATA])
    return host


def write_files(host: Host, count: int, content: str, start: int = 0) -> None:
    data = host.path(DATA)
    data.mkdir(parents=True, exist_ok=True)
    for index in range(start, start + count):
        (data / f"file{index}.txt").write_text(f"{content} {index}\n")


def status(bs: Host, name: str) -> dict[str, Any]:
    done = dupctl(bs, "status", name, "--json")
    return json.loads(done.stdout)[0]


def passphrase(bs: Host, name: str) -> str:
    return host_passphrase(bs.path("/etc/duplicity/passphrase").read_bytes(), name)


def snapshot(host: Host, root: str = DATA) -> dict[str, bytes]:
    """{file name: content} of the files in `root` on `host`."""
    return {file.name: file.read_bytes() for file in sorted(host.path(root).iterdir())}


def restore(bs: Host, name: str, target: str, time: str | None = None) -> dict[str, bytes]:
    """Restore `name`'s backup (as of `time`) on the server with raw duplicity: its DATA."""
    repository = Repository(
        f"file://{shared.BACKUPS.format(name)}", f"dupstack-{name}", "/var/cache/dupstack"
    )
    argv = restore_command(repository, target, time=time)
    bs.run(["sh", "-c", EXPORT_FIRST_LINE, "sh", *argv], input=f"{passphrase(bs, name)}\n")
    return snapshot(bs, f"{target}/{DATA}")
