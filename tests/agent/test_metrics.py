"""The Prometheus textfile: each host's runs, drill, sets and quarantine, from the server's
files alone, replaced whole and readable by node-exporter; `dupctl metrics` rewrites it."""

from __future__ import annotations

import fcntl
import os
import stat
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import cli, quota
from agent.config.load import load_inventory
from agent.errors import DupstackError
from agent.metrics import HOST_METRICS, chain_lengths, refresh, render
from agent.offsite.ledger import ledger_file, save_ledger
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.runlog import DrillRecord, RunRecord, write_drill, write_status

pytestmark = pytest.mark.root  # the server's files are root's: sealed means owned by root

INVENTORY = """\
server: {address: 10.0.0.1}
hosts:
  web1: {address: 10.0.0.5, quota: 1G}
  db1: {address: 10.0.0.6}
"""
T = ["20261101T030000Z", "20261102T030000Z", "20261103T030000Z", "20261108T030000Z",
     "20261109T030000Z", "20261110T030000Z"]  # fmt: skip
NOT_A_USER = 54321  # a uid with no account: a file it owns is not sealed
TEXTFILE = Path("var/lib/prometheus/node-exporter/dupstack.prom")  # the default, under the root


@pytest.fixture
def paths(tmp_path: Path) -> ServerPaths:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(INVENTORY)
    return paths


def run(
    host: str,
    end: str,
    result: str = "ok",
    hooks: list[dict[str, Any]] | None = None,
    quarantined: list[str] | None = None,
) -> RunRecord:
    """A run of `host` that ended at `end`, as agent/actions/backup.py records it."""
    return RunRecord(host=host, start=end, end=end, duration=12.5, action="incremental",
                     result=result, error=None if result == "ok" else "it broke", log=None,
                     hooks=hooks or [], quarantined=quarantined or [])  # fmt: skip


def drill(host: str, result: str, compared: int) -> DrillRecord:
    """A drill of `host` from 06:00:00 to 06:00:30 on 2026-11-10."""
    return DrillRecord(host=host, start="2026-11-10T06:00:00Z", duration=30.0, set_time=T[5],
                       result=result, files_in_set=100, files_on_host=101, sampled=20,
                       compared=compared, changed=20 - compared)  # fmt: skip


def backup_files(paths: ServerPaths, host: str, names: list[str], owner: int = 0) -> Path:
    """Files named as duplicity names them in the host's folder, sealed unless `owner` says."""
    folder = backups_dir(paths, load_inventory(paths).host(host))
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"x" * 8192)
        os.chown(folder / name, owner, 0)
        os.chmod(folder / name, 0o440)
    return folder


def samples(text: str) -> dict[tuple[str, str | None], float]:
    """(metric, host label) -> value, from the text as Prometheus parses it."""
    return {
        (sample.name, sample.labels.get("host")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def of(values: dict[tuple[str, str | None], float], host: str) -> dict[str, float]:
    return {name.removeprefix("dupstack_"): value for (name, who), value in values.items()
            if who == host}  # fmt: skip


def test_each_host_has_its_last_run_drill_sets_and_quarantine(paths: ServerPaths) -> None:
    write_status(paths, run("web1", "2026-11-10T03:00:00Z", hooks=[
        {"hook": "commands", "step": "a", "phase": "before", "result": "ok"},
        {"hook": "commands", "step": "b", "phase": "always", "result": "failed"},
    ], quarantined=["x: planted", "y: empty"]))  # fmt: skip
    write_drill(paths, drill("web1", "pass", compared=17))
    folder = backup_files(paths, "web1", [
        f"duplicity-full.{T[0]}.manifest.gpg", f"duplicity-full.{T[0]}.vol1.difftar.gpg",
        f"duplicity-full-signatures.{T[0]}.sigtar.gpg",
        f"duplicity-inc.{T[0]}.to.{T[1]}.manifest.gpg",
        f"duplicity-inc.{T[1]}.to.{T[2]}.manifest.gpg",
        f"duplicity-full.{T[3]}.manifest.gpg",
        f"duplicity-inc.{T[3]}.to.{T[4]}.manifest.gpg",
        f"duplicity-inc.{T[2]}.to.{T[5]}.manifest.gpg",  # extends the older chain's newest set
        f"duplicity-inc.{T[1]}.to.{T[4]}.manifest.gpg",  # extends no chain's newest set
    ])  # fmt: skip
    backup_files(paths, "web1", [f"duplicity-inc.{T[4]}.to.{T[5]}.manifest.gpg"], NOT_A_USER)
    batch = paths.volume_state_dir / "quarantine" / "web1" / "2026-11-10T03:00:00Z"
    batch.mkdir(parents=True)
    for name in ("x", "y", "z"):
        (batch / name).write_text("planted")
    backup_files(paths, "db1", [f"duplicity-full.{T[0]}.manifest.gpg"])

    values = samples(render(paths, load_inventory(paths)))

    assert of(values, "web1") == {
        "last_run_timestamp_seconds": 1_794_279_600.0,  # 2026-11-10T03:00:00Z
        "last_success_timestamp_seconds": 1_794_279_600.0,
        "last_run_success": 1.0,
        "last_run_duration_seconds": 12.5,
        "last_run_quarantined_files": 2.0,
        "last_run_hook_failures": 1.0,
        "volume_usage_bytes": float(quota.usage(folder)),
        "quota_bytes": float(1 << 30),
        "limit_bytes": float(1 << 30),  # its quota
        "sets": 6.0,  # the unsealed and the unlinked incrementals are not counted
        "chains": 2.0,
        "newest_chain_sets": 2.0,
        "quarantined_files": 3.0,
        "last_drill_timestamp_seconds": 1_794_290_430.0,  # its start + 30 s
        "last_drill_success": 1.0,
        "last_drill_compared_files": 17.0,
    }
    assert of(values, "web1")["volume_usage_bytes"] >= 10 * 8192
    db1 = of(values, "db1")  # never ran, never drilled, no quota: only what the volume says
    volume = os.statvfs(paths.mount_point)
    share = (volume.f_blocks * volume.f_frsize - quota.default_reserve(paths.mount_point)
             - (1 << 30))  # fmt: skip
    assert db1 == {"volume_usage_bytes": db1["volume_usage_bytes"], "sets": 1.0, "chains": 1.0,
                   "newest_chain_sets": 1.0, "quarantined_files": 0.0,
                   "limit_bytes": float(max(0, share))}  # fmt: skip
    assert values[("dupstack_hosts", None)] == 2.0
    assert time.time() - values[("dupstack_metrics_generated_timestamp_seconds", None)] < 60


def test_every_metric_has_help_and_is_a_gauge(paths: ServerPaths) -> None:
    families = list(text_string_to_metric_families(render(paths, load_inventory(paths))))
    assert len(families) == len(HOST_METRICS) + 2
    for family in families:
        assert family.name.startswith("dupstack_") and family.type == "gauge"
        assert family.documentation.endswith(".")


def test_a_failed_run_reads_0_and_keeps_the_last_success(paths: ServerPaths) -> None:
    write_status(paths, run("web1", "2026-11-09T03:00:00Z"))
    write_status(paths, run("web1", "2026-11-10T03:00:00Z", result="failed"))
    write_drill(paths, drill("web1", "fail", compared=0))

    web1 = of(samples(render(paths, load_inventory(paths))), "web1")

    assert web1["last_run_success"] == 0.0 and web1["last_drill_success"] == 0.0
    assert web1["last_run_timestamp_seconds"] == 1_794_279_600.0
    assert web1["last_success_timestamp_seconds"] == 1_794_193_200.0  # the day before
    assert (web1["sets"], web1["chains"], web1["newest_chain_sets"]) == (0.0, 0.0, 0.0)


def test_chains_link_incrementals_by_their_start() -> None:
    names = [
        f"duplicity-inc.{T[1]}.to.{T[2]}.manifest.gpg",  # listed before its full
        f"duplicity-full.{T[1]}.manifest.gpg",
        f"duplicity-full.{T[0]}.manifest.gpg",
        f"duplicity-new-signatures.{T[2]}.to.{T[3]}.sigtar.gpg",  # not a manifest
        "junk.manifest.gpg",
    ]
    assert chain_lengths(names) == [1, 2]
    assert chain_lengths([]) == []


def test_refresh_replaces_the_file_whole_readable_by_node_exporter(
    paths: ServerPaths, tmp_path: Path
) -> None:
    inventory = load_inventory(paths)
    old_umask = os.umask(0o077)  # cron's may be strict; node-exporter must still read it
    try:
        first = refresh(paths, inventory)
        assert first == tmp_path / TEXTFILE
        before = first.stat().st_ino
        write_status(paths, run("web1", "2026-11-10T03:00:00Z"))
        assert refresh(paths, inventory) == first
    finally:
        os.umask(old_umask)
    assert first.stat().st_ino != before  # renamed over, never rewritten in place
    assert stat.S_IMODE(first.stat().st_mode) == 0o644
    for level in (first.parent, first.parent.parent):  # both made by refresh
        assert stat.S_IMODE(level.stat().st_mode) == 0o755
    assert os.listdir(first.parent) == ["dupstack.prom"]  # no temporary file left
    assert ("dupstack_last_run_success", "web1") in samples(first.read_text())


def test_a_null_textfile_writes_nothing(paths: ServerPaths, tmp_path: Path) -> None:
    paths.config_file.write_text(INVENTORY + "metrics: {textfile: null}\n")
    assert refresh(paths, load_inventory(paths)) is None
    assert not (tmp_path / "var/lib/prometheus").exists()


def test_a_refresh_waits_for_the_one_under_way(paths: ServerPaths, tmp_path: Path) -> None:
    """So the file a later refresh leaves is the later render, never an older one."""
    inventory = load_inventory(paths)
    refresh(paths, inventory)  # creates the lock file
    lock = os.open(paths.state_dir / "locks" / "metrics.lock", os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another refresh holding it
    write_status(paths, run("web1", "2026-11-10T03:00:00Z"))
    waiting = threading.Thread(target=refresh, args=(paths, inventory))
    waiting.start()
    time.sleep(0.3)
    try:
        assert ("dupstack_last_run_success", "web1") not in samples(
            (tmp_path / TEXTFILE).read_text()
        )
    finally:
        os.close(lock)
        waiting.join(timeout=10)
    assert ("dupstack_last_run_success", "web1") in samples((tmp_path / TEXTFILE).read_text())


def test_a_textfile_that_cannot_be_written_is_one_clear_error(
    paths: ServerPaths, tmp_path: Path
) -> None:
    (tmp_path / "blocked").write_text("a file, not a folder")
    paths.config_file.write_text(INVENTORY + "metrics: {textfile: /blocked/dupstack.prom}\n")
    with pytest.raises(DupstackError) as raised:
        refresh(paths, load_inventory(paths))
    assert "dupstack.prom" in raised.value.message and "metrics.textfile" in raised.value.hint


@pytest.fixture
def dupctl(tmp_path: Path) -> Callable[..., int]:
    """`dupctl --root TMP ARGS...`."""
    return lambda *args: cli.main(["--root", str(tmp_path), *args])


def test_dupctl_metrics_writes_the_file(
    paths: ServerPaths,
    tmp_path: Path,
    dupctl: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_status(paths, run("db1", "2026-11-10T03:00:00Z"))
    assert dupctl("metrics") == 0
    assert capsys.readouterr().out == f"wrote {tmp_path / TEXTFILE}\n"
    assert samples((tmp_path / TEXTFILE).read_text())[("dupstack_last_run_success", "db1")] == 1


def test_dupctl_metrics_print_writes_stdout_only(
    paths: ServerPaths,
    tmp_path: Path,
    dupctl: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert dupctl("metrics", "--print") == 0
    assert samples(capsys.readouterr().out)[("dupstack_hosts", None)] == 2
    assert not (tmp_path / TEXTFILE).exists()


def test_the_offsite_lag_per_host_and_target(paths: ServerPaths) -> None:
    paths.config_file.write_text(
        INVENTORY + "offsite:\n  targets:\n    deep: {type: s3, bucket: dr-copies, "
        "credentials_file: /etc/dupstack/deep.ini}\n"
    )
    names = [f"duplicity-full.{T[0]}.manifest.gpg", f"duplicity-full.{T[0]}.vol1.difftar.gpg",
             f"duplicity-full-signatures.{T[0]}.sigtar.gpg"]  # fmt: skip
    backup_files(paths, "web1", names)
    entry = {"size": 8192, "sha256": "0" * 64, "etag": "e", "storage_class": "STANDARD"}
    save_ledger(paths, "deep", "web1", {"last_push": "2026-11-10T04:00:00Z",
                                         "objects": {names[1]: entry}})  # fmt: skip
    text = render(paths, load_inventory(paths))
    found = {
        (sample.name, sample.labels.get("host"), sample.labels.get("target")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("dupstack_offsite_")
    }
    pushed = datetime(2026, 11, 10, 4, tzinfo=UTC).timestamp()
    assert found == {
        ("dupstack_offsite_last_push_timestamp_seconds", "web1", "deep"): pushed,
        ("dupstack_offsite_files_pending", "web1", "deep"): 2,  # the manifest and signatures
        ("dupstack_offsite_files_pending", "db1", "deep"): 0,  # never pushed, nothing to push
    }
    ledger_file(paths, "deep", "web1").write_text("{damaged")
    damaged = render(paths, load_inventory(paths))
    assert 'dupstack_offsite_files_pending{host="web1"' not in damaged
