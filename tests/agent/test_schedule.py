"""Unattended backups of tenant hosts: the schedule follows the inventory, missed runs are
caught up, and a real cron daemon runs `dupctl backup` on its own.

One fleet for the module: `bs` (after `dupctl init`), tenants web1 and web2. The tests run in
order, as a story.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fleet import DIE_WITH_PARENT, HOST_ENV, Fleet, Host
from fleet.backup import backup_server, dupctl, ok, set_host_options
from tests.agent.backup_fleet import status, tenant

pytestmark = pytest.mark.root
CRONTAB = "/etc/cron.d/dupstack-hosts"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        backup_server(fleet)
        tenant(fleet, "web1")
        tenant(fleet, "web2")
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


def jobs(bs: Host) -> list[str]:
    """The crontab's job lines."""
    text = bs.path(CRONTAB).read_text()
    return [line for line in text.splitlines() if line and line[0] not in "#" and "=" not in line]


def test_host_add_puts_each_host_on_the_schedule(bs: Host) -> None:
    lines = jobs(bs)
    for name in ("web1", "web2"):
        assert any(
            line.endswith(f"dupctl backup {name} 2>&1 | logger -t dupstack") for line in lines
        )
        assert any(f" dupctl prune {name} " in line for line in lines)
    shown = json.loads(ok(dupctl(bs, "schedule", "show", "--json")))
    assert shown["up_to_date"] is True
    web1 = next(job for job in shown["jobs"] if (job["job"], job["host"]) == ("backup", "web1"))
    assert web1["when"] == "H H(1-5) * * *"
    next_run = datetime.fromisoformat(web1["next_run"])
    assert timedelta(0) < next_run - datetime.now().astimezone() <= timedelta(days=1)
    assert 1 <= next_run.hour <= 5
    assert status(bs, "web1")["schedule"]["next_backup"] == web1["next_run"]
    table = ok(dupctl(bs, "schedule", "show"))
    assert re.search(r"(?m)^ *backup +web1 +H H\(1-5\) \* \* \* ", table), table


def test_hosts_never_backed_up_count_as_missed_and_are_caught_up(bs: Host) -> None:
    set_host_options(bs, "web2", schedule={"catch_up": False})
    done = ok(dupctl(bs, "backup", "--missed", "--json"))
    assert [run["host"] for run in json.loads(done)] == ["web1"]  # web2: catch_up off
    assert status(bs, "web1")["last_run"]["result"] == "ok"
    assert status(bs, "web2")["last_run"] is None
    again = dupctl(bs, "backup", "--missed")
    assert (again.returncode, again.stdout.strip()) == (0, "no missed scheduled backups")


def test_a_run_missed_while_the_server_was_down_is_caught_up(bs: Host) -> None:
    record = bs.path("/var/lib/dupstack/status/web1.json")
    last = json.loads(record.read_text())
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    record.write_text(json.dumps({**last, "start": f"{two_days_ago:%Y-%m-%dT%H:%M:%SZ}"}))
    done = ok(dupctl(bs, "backup", "--missed", "--json"))
    [run] = json.loads(done)
    assert (run["host"], run["result"], run["action"]) == ("web1", "ok", "incremental")
    assert status(bs, "web1")["last_run"]["start"] > last["start"]


def test_hand_edits_of_the_inventory_reach_cron_through_apply(bs: Host) -> None:
    set_host_options(bs, "web2", schedule={"backup": "45 23 * * 6", "prune": None})
    shown = json.loads(dupctl(bs, "schedule", "show", "--json").stdout)
    assert shown["up_to_date"] is False
    assert "schedule apply" in dupctl(bs, "schedule", "show").stderr
    assert ok(dupctl(bs, "schedule", "apply")).strip() == f"{CRONTAB} written"
    assert "45 23 * * 6 root" in bs.path(CRONTAB).read_text()
    assert not any(" prune web2 " in line for line in jobs(bs))
    assert ok(dupctl(bs, "schedule", "apply", "--quiet")) == ""


def test_a_broken_inventory_keeps_the_schedule_in_force(bs: Host) -> None:
    before = bs.path(CRONTAB).read_text()
    set_host_options(bs, "web2", schedule={"backup": "45 25 * * 6"})
    done = dupctl(bs, "schedule", "apply")
    assert done.returncode == 2
    assert "hosts.web2.schedule.backup: bad cron expression '45 25 * * 6'" in done.stderr
    assert bs.path(CRONTAB).read_text() == before
    set_host_options(bs, "web2", schedule={"backup": "45 23 * * 6", "prune": None})


def test_real_cron_runs_a_hosts_backup_unattended(bs: Host) -> None:
    set_host_options(bs, "web2", schedule={"backup": "* * * * *", "catch_up": False})
    ok(dupctl(bs, "schedule", "apply"))
    for other in ("/etc/crontab", "/etc/cron.d/e2scrub_all", "/etc/cron.d/dupstack"):
        bs.path(other).unlink(missing_ok=True)  # only dupstack's jobs run in this host
    started = datetime.now(UTC).replace(microsecond=0)
    cron = subprocess.Popen(
        [*DIE_WITH_PARENT, *bs.keeper.nsenter(["cron", "-f"])],
        env=HOST_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150  # cron starts jobs at the next full minute
        run = None
        while time.monotonic() < deadline:
            run = status(bs, "web2")["last_run"]
            if run and run["start"] >= f"{started:%Y-%m-%dT%H:%M:%SZ}":
                break
            time.sleep(2)
        assert run is not None, "cron did not back up web2"
        assert (run["result"], run["action"]) == ("ok", "full"), run
        assert run["start"] >= f"{started:%Y-%m-%dT%H:%M:%SZ}"
    finally:
        cron.kill()
        cron.wait()
        set_host_options(bs, "web2", schedule={"backup": None})
        ok(dupctl(bs, "schedule", "apply"))
        deadline = time.monotonic() + 60
        while bs.run(["pgrep", "-f", "dupctl backup web2"], check=False).returncode == 0:
            assert time.monotonic() < deadline  # a run cron started last must end first
            time.sleep(1)


def test_host_remove_takes_the_host_off_the_schedule(bs: Host) -> None:
    ok(dupctl(bs, "host", "remove", "web2"))
    assert not any("web2" in line for line in jobs(bs))
    assert any(" backup web1 " in line for line in jobs(bs))
