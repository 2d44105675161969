"""`dupctl status`: last run and sets of each host, read on the backup server alone.

One fleet for the module: the backup server `bs` (after `dupctl init`) and tenants web1 (backed
up once, then down) and web2 (never backed up).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from agent import quota
from agent.times import interval
from fleet import Fleet, Host
from fleet.backup import backup_server
from tests.agent.backup_fleet import dupctl, tenant

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def bs() -> Iterator[Host]:
    with Fleet() as fleet:
        bs = backup_server(fleet)
        tenant(fleet, "web1")
        tenant(fleet, "web2")
        inventory = bs.path("/etc/duplicity/dupstack.yaml")
        inventory.write_text(
            inventory.read_text().replace("hosts:", "defaults:\n  full_if_older_than: 1W2D\nhosts:")
        )
        assert dupctl(bs, "backup", "web1").returncode == 0
        fleet.hosts["web1"].down()  # status never needs the host
        yield bs


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7D", 7 * 86400),
        ("12h", 43200),
        ("1W2D", 9 * 86400),
        ("6M", 180 * 86400),
        ("1Y", 365 * 86400),
    ],
)
def test_intervals_are_read_as_duplicity_reads_them(text: str, seconds: int) -> None:
    assert interval(text) == timedelta(seconds=seconds)


def test_status_shows_last_run_sets_and_next_full(bs: Host) -> None:
    done = dupctl(bs, "status", "--json")
    assert done.returncode == 0, done.stderr
    web1, web2 = json.loads(done.stdout)
    assert web1["last_run"]["result"] == "ok" and web1["last_run"]["action"] == "full"
    assert (web1["chains"], web1["sets"], web1["chain_length"]) == (1, 1, 1)
    assert web1["size"] == sum(
        f.stat().st_size for f in bs.path("/mnt/vdb/hosts/dup-web1/backups").iterdir()
    )
    last_full = datetime.fromisoformat(web1["last_full"])
    assert datetime.fromisoformat(web1["next_full"]) - last_full == timedelta(days=9)
    assert web1["last_backup"] == web1["last_full"] and web1["error"] is None
    assert web1["last_success"] == web1["last_run"]["end"]
    schedule = web2.pop("schedule")
    volume = os.statvfs(bs.path("/mnt/vdb"))  # 2 hosts without a quota: half the volume each
    share = (volume.f_blocks * volume.f_frsize - quota.default_reserve(bs.path("/mnt/vdb"))) // 2
    assert web2.pop("limit") == web1["limit"] == share
    assert web2.pop("limit_from") == web1["limit_from"] == "share"
    assert web2 == {
        "host": "web2", "last_run": None, "last_success": None, "last_drill": None,
        "chains": 0, "sets": 0, "chain_length": 0,
        "incomplete_sets": 0, "size": 0, "usage": 0, "quota": None, "last_backup": None,
        "last_full": None, "next_full": None, "last_set": None, "error": None,
    }  # fmt: skip
    assert (schedule["backup"], schedule["prune"], schedule["drill"], schedule["catch_up"]) == (
        "H H(1-5) * * *", "H 0 * * 0", "H H(6-7) * * 6", True,
    )  # fmt: skip
    assert datetime.fromisoformat(schedule["next_backup"]) > datetime.now().astimezone()


def test_status_is_a_table_by_default(bs: Host) -> None:
    done = dupctl(bs, "status")
    assert done.returncode == 0, done.stderr
    assert re.search(r"web1 +\d{4}-\d\d-\d\d \d\d:\d\d +ok +1 +1 +1 +\d+ KiB", done.stdout)
    assert re.search(r"web2 +never +- +0 +0 +0 +0 KiB of \d+ KiB \(share\) +- +-", done.stdout)


def test_status_of_one_host_and_of_an_unknown_one(bs: Host) -> None:
    [web2] = json.loads(dupctl(bs, "status", "web2", "--json").stdout)
    assert web2["host"] == "web2"
    unknown = dupctl(bs, "status", "nope")
    assert unknown.returncode == 2 and "no host 'nope'" in unknown.stderr
