"""The tenant hosts' schedule: cron expressions with H, the inventory's `schedule:`, the
rendered crontab, and what counts as a missed run. No root needed: files under a tmp root."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.actions.schedule import apply_schedule, show_schedule
from agent.config.load import load_inventory
from agent.errors import ConfigError
from agent.paths import ServerPaths
from agent.schedule import crontab
from agent.schedule.cron import BadCron, resolve

INVENTORY = """\
server: {address: 192.168.254.10}
defaults:
  schedule:
    backup: H H(1-5) * * *
hosts:
  web1:
    address: 10.0.0.5
  web2:
    address: 10.0.0.6
    schedule:
      backup: 30 23 * * 1-5
      prune: null
  db1:
    address: 10.0.0.7
    schedule:
      backup: null
"""


@pytest.fixture
def paths(tmp_path: Path) -> ServerPaths:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(INVENTORY)
    return paths


def test_h_picks_a_stable_value_per_host_within_its_range() -> None:
    picks = {name: resolve("H H(1-5) * * *", name).fields for name in ("web1", "web2", "db1")}
    for fields in picks.values():
        minute, hour, *rest = fields.split()
        assert 0 <= int(minute) <= 59 and 1 <= int(hour) <= 5 and rest == ["*", "*", "*"]
    assert picks == {name: resolve("H  H(1-5) * * *", name).fields for name in picks}
    spread = {resolve("H * * * *", f"host{index}").fields for index in range(20)}
    assert len(spread) > 5  # a fleet does not start at the same minute


def test_names_ranges_steps_and_keywords_become_plain_cron_fields() -> None:
    assert resolve("*/15 * * * mon-fri", "x").fields == "0,15,30,45 * * * 1,2,3,4,5"
    assert resolve("@daily", "x").fields == "0 0 * * *"
    assert resolve("0 4 1 jan,jul *", "x").fields == "0 4 1 1,7 *"


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("0 2 * *", "needs 5 fields"),
        ("0 0 2 * * *", "needs 5 fields"),
        ("61 * * * *", "out of range"),
        ("H H(1-30) * * *", "out of range"),
        ("0 0 L * *", "L"),
        ("0 0 * * 1#2", "#"),
        ("@fortnightly", "unknown keyword"),
        ("every day", "needs 5 fields"),
    ],
)
def test_what_the_servers_cron_cannot_run_is_refused(expression: str, why: str) -> None:
    with pytest.raises(BadCron, match=re.escape(why)):
        resolve(expression, "web1")


def test_schedule_keys_merge_one_by_one_over_the_defaults(paths: ServerPaths) -> None:
    hosts = load_inventory(paths).hosts
    assert hosts["web1"].schedule.backup == "H H(1-5) * * *"  # the file's defaults
    assert hosts["web1"].schedule.prune == "H 0 * * 0"  # built in
    assert hosts["web2"].schedule.backup == "30 23 * * 1-5"
    assert hosts["web2"].schedule.prune is None
    assert hosts["db1"].schedule.backup is None and hosts["db1"].schedule.catch_up is True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("backup: 30 23 * * 1-5", "backup: 30 25 * * 1-5"),
            ":11: hosts.web2.schedule.backup: bad cron expression '30 25 * * 1-5': a value is out ",
        ),
        (
            ("      prune: null", "      prnue: null"),
            ":12: hosts.web2.schedule.prnue: unknown key 'prnue' (did you mean 'prune'?)",
        ),
        (
            ("backup: H H(1-5) * * *", "backup: daily"),
            ":4: defaults.schedule.backup: bad cron expression 'daily': needs 5 fields",
        ),
        (
            ("      backup: null", "      backup: 5"),
            ":16: hosts.db1.schedule.backup: expected a cron expression like 'H H(1-5) * * *'",
        ),
    ],
)
def test_a_bad_schedule_names_its_line_and_key_once(
    paths: ServerPaths, change: tuple[str, str], expected: str
) -> None:
    paths.config_file.write_text(INVENTORY.replace(*change))
    with pytest.raises(ConfigError) as raised:
        load_inventory(paths)
    lines = [line.removeprefix(str(paths.config_file)) for line in raised.value.message.split("\n")]
    assert len(lines) == 1, lines  # a bad default is reported once, not once per host
    assert lines[0].startswith(expected)


def crontab_lines(paths: ServerPaths) -> list[str]:
    text = crontab.render(paths, load_inventory(paths))
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_every_host_gets_its_own_backup_prune_and_drill_line(paths: ServerPaths) -> None:
    lines = crontab_lines(paths)
    assert lines[:2] == ["SHELL=/bin/sh", f"PATH={crontab.PATH}"]
    jobs = [line for line in lines if " dupctl " in line]
    mount = paths.mount_point
    web1 = resolve("H H(1-5) * * *", "web1").fields
    prune1 = resolve("H 0 * * 0", "web1").fields
    guard = f"root mountpoint -q {mount} && dupctl"
    log = "2>&1 | logger -t dupstack"
    assert jobs == [
        # db1: no backup line (null); its prune stays
        f"{resolve('H 0 * * 0', 'db1').fields} {guard} prune db1 {log}",
        f"{resolve('H H(6-7) * * 6', 'db1').fields} {guard} drill db1 {log}",
        f"{web1} {guard} backup web1 {log}",
        f"{prune1} {guard} prune web1 {log}",
        f"{resolve('H H(6-7) * * 6', 'web1').fields} {guard} drill web1 {log}",
        f"30 23 * * 1,2,3,4,5 {guard} backup web2 {log}",
        f"{resolve('H H(6-7) * * 6', 'web2').fields} {guard} drill web2 {log}",
        f"0,5,10,15,20,25,30,35,40,45,50,55 * * * * root dupctl schedule apply --quiet {log}",
        f"{resolve('H * * * *', 'catch-up').fields} {guard} backup --missed {log}",
        f"@reboot {guard} backup --missed {log}",
    ]
    assert not any("%" in line for line in lines)  # cron would cut the line there


def test_without_an_inventory_only_dupctls_own_jobs_are_scheduled(tmp_path: Path) -> None:
    paths = ServerPaths.from_root(tmp_path)
    assert apply_schedule(paths) is True
    text = paths.hosts_cron_file.read_text()
    assert "schedule apply" in text and "backup --missed" in text
    assert not re.search(r"dupctl (backup|prune) [a-z]", text)
    assert paths.hosts_cron_file.stat().st_mode & 0o777 == 0o644  # cron skips writable files


def test_apply_rewrites_only_on_change_and_keeps_the_crontab_of_a_broken_inventory(
    paths: ServerPaths,
) -> None:
    assert apply_schedule(paths) is True
    before = paths.hosts_cron_file.read_text()
    assert apply_schedule(paths) is False
    paths.config_file.write_text(INVENTORY.replace("10.0.0.6", "10.0.0.66"))
    assert apply_schedule(paths) is False  # the address is not in the crontab
    paths.config_file.write_text(INVENTORY.replace("30 23", "30 99"))
    with pytest.raises(ConfigError, match=r"hosts\.web2\.schedule\.backup"):
        apply_schedule(paths)
    assert paths.hosts_cron_file.read_text() == before
    with pytest.raises(ConfigError):  # show says so too, rather than a schedule not in force
        show_schedule(paths)
    paths.config_file.write_text(INVENTORY.replace("30 23", "45 22"))
    assert show_schedule(paths)["up_to_date"] is False
    assert apply_schedule(paths) is True
    assert "45 22 * * 1,2,3,4,5" in paths.hosts_cron_file.read_text()
    assert show_schedule(paths)["up_to_date"] is True


def test_show_lists_every_job_with_its_next_run(paths: ServerPaths) -> None:
    now = datetime(2026, 12, 4, 23, 40, tzinfo=UTC)  # a Friday
    jobs = show_schedule(paths, now)["jobs"]
    web2 = next(job for job in jobs if job["host"] == "web2" and job["job"] == "backup")
    assert web2["when"] == "30 23 * * 1-5" and web2["cron"] == "30 23 * * 1,2,3,4,5"
    assert web2["next_run"] == "2026-12-07T23:30+00:00"  # Monday: not Saturday or Sunday
    assert web2["full_if_older_than"] == "7D" and web2["last_run"] is None
    assert [job["job"] for job in jobs if job["host"] is None] == ["apply", "catch-up", "catch-up"]
    assert jobs[-1]["next_run"] is None and jobs[-1]["when"] == "@reboot"
    assert not any(job["host"] == "db1" and job["job"] == "backup" for job in jobs)


def test_a_run_is_missed_once_its_time_and_the_grace_have_passed_without_a_start(
    paths: ServerPaths,
) -> None:
    hosts = load_inventory(paths).hosts
    web2 = hosts["web2"]  # 23:30 on weekdays
    monday = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
    assert crontab.missed(web2, None, monday)  # never ran: back it up
    ran = monday - timedelta(days=3, seconds=-20)  # Friday's run started at 23:30:20
    assert not crontab.missed(web2, ran, monday + crontab.GRACE - timedelta(minutes=1))
    assert crontab.missed(web2, ran, monday + crontab.GRACE)
    assert not crontab.missed(web2, monday + timedelta(seconds=5), monday + timedelta(hours=5))
    assert not crontab.missed(hosts["db1"], None, monday)  # no backup schedule


def test_catch_up_can_be_turned_off_per_host(paths: ServerPaths) -> None:
    paths.config_file.write_text(
        INVENTORY.replace("      prune: null", "      prune: null\n      catch_up: false")
    )
    web2 = load_inventory(paths).hosts["web2"]
    assert not crontab.missed(web2, None, datetime(2026, 12, 7, 23, 59, tzinfo=UTC))


def test_stale_hosts_are_checked_hourly_when_notifications_are_set(paths: ServerPaths) -> None:
    assert not any("notify stale" in line for line in crontab_lines(paths))
    paths.config_file.write_text(INVENTORY + "notifications: {urls_file: /etc/n}\n")
    [line] = [line for line in crontab_lines(paths) if "notify stale" in line]
    stale = resolve("H * * * *", "stale").fields
    # not behind the mount guard: an unmounted volume is when hosts go stale
    assert line == f"{stale} root dupctl notify stale 2>&1 | logger -t dupstack"
    paths.config_file.write_text(
        INVENTORY + "notifications: {urls_file: /etc/n, stale_after: null}\n"
    )
    assert not any("notify stale" in line for line in crontab_lines(paths))
