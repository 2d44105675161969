"""A backup server after `dupctl init`, tenants after `dupctl host add`, and a dataset that
is hard to restore exactly (modes, mtimes, links, empty folders, awkward names).

    with Fleet() as fleet:
        bs = backup_server(fleet)
        web1 = tenant(fleet, bs, "web1", "/opt/app")
        write_tree(web1.path("/opt/app"))
        dupctl(bs, "backup", "web1")
        assert tree(bs.path("/tmp/r/opt/app")) == tree(web1.path("/opt/app"))
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import yaml

from fleet import Fleet, Host

PASSCODE = "correct horse battery staple: 'single' \"double\""
SERVER_KEY = "/etc/duplicity/ssh/id_ed25519"
BACKUPS = "/mnt/vdb/hosts/dup-{}/backups"
AWKWARD = "a b \"q\" 's' é 日本.txt"  # spaces, both quotes, non-ASCII


def dupctl(bs: Host, *args: str) -> subprocess.CompletedProcess[str]:
    """dupctl on the backup server (stdin is not a terminal)."""
    return bs.run(["dupctl", *args], input="", check=False)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    """The output of a dupctl run that must have worked."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def backup_server(fleet: Fleet) -> Host:
    """`bs`: volume mounted, `dupctl init` done with PASSCODE, its SSH key made."""
    bs = fleet.add_host("bs", volume=fleet.dir / "vdb.img")
    bs.start_sshd()
    init = ["dupctl", "init", "--mode", "create", "--device", str(bs.device), "--wait", "2"]
    ok(bs.run([*init, "--passcode-file", "-"], input=f"{PASSCODE}\n", check=False))
    bs.run(["install", "-d", "-m", "0700", "/etc/duplicity/ssh"])
    bs.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dupstack@bs", "-f", SERVER_KEY])
    return bs


def tenant(fleet: Fleet, bs: Host, name: str, *paths: str) -> Host:
    """A host with sshd that trusts `bs`, added with `paths` to back up."""
    host = fleet.add_host(name)
    host.start_sshd()
    host.authorize(bs.path(f"{SERVER_KEY}.pub").read_text())
    options = [option for path in paths for option in ("--path", path)]
    ok(dupctl(bs, "host", "add", name, "--address", host.address, *options,
              "--server-address", bs.address))  # fmt: skip
    return host


def set_host_options(bs: Host, name: str, **settings: Any) -> None:
    """Change a host's keys in the inventory, as an operator editing the file would."""
    file = bs.path("/etc/duplicity/dupstack.yaml")
    document = yaml.safe_load(file.read_text())
    document["hosts"][name].update(settings)
    file.write_text(yaml.safe_dump(document))


def write_tree(root: Path) -> None:
    """Files that test a restore: modes, fixed mtimes, links (one dangling), an empty folder,
    a binary file, names with spaces, quotes and non-ASCII characters."""
    (root / "empty").mkdir(parents=True)
    (root / "sub dir" / "日本").mkdir(parents=True)
    files = {
        "config.txt": (b"version 1\n", 0o640),
        AWKWARD: ("é 日本\n".encode(), 0o600),
        "sub dir/run it.sh": (b"#!/bin/sh\necho ok\n", 0o755),
        "sub dir/日本/data.bin": (hashlib.sha256(b"seed").digest() * 2048, 0o444),
    }
    for name, (content, mode) in files.items():
        (root / name).write_bytes(content)
        (root / name).chmod(mode)
    (root / "link to config").symlink_to("config.txt")
    (root / "sub dir" / "dangling").symlink_to("../nowhere")
    (root / "empty").chmod(0o750)
    entries = sorted(root.rglob("*"), key=lambda p: -len(p.parts))  # children first
    for moment, entry in enumerate([*entries, root]):
        os.utime(entry, (1_700_000_000 + moment, 1_700_000_000 + moment), follow_symlinks=False)


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything `root` holds, as comparable records: kind, mode, owner, mtime (not of
    links), and content digest or link target. `root` may be a file."""
    records = {}
    for path in [root, *sorted(root.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            record: tuple[Any, ...] = ("link", os.readlink(path))
        else:
            kind = "dir" if stat.S_ISDIR(info.st_mode) else "file"
            digest = "" if kind == "dir" else hashlib.sha256(path.read_bytes()).hexdigest()
            record = (kind, oct(stat.S_IMODE(info.st_mode)), int(info.st_mtime), digest)
        records[str(path.relative_to(root))] = (*record, info.st_uid, info.st_gid)
    return records
