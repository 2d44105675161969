"""`dupctl offsite plan`: the planner's figures against cases worked out by hand, the S3
Glacier guide's example, the sets on a volume, price overrides and bad input.

The arithmetic is written out so that a reader can check it against agent/data/prices.json
(us-east-1) and the model in agent/offsite/plan.py: GB = 2**30 bytes, a month = 30 days,
MiB = 2**20. A set's objects: its volumes, a manifest of 1024 + 64 B per file it lists, and
signatures of 512 + 12 + 12 B per block (isqrt(size) rounded up to 512 B) per file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.commands import offsite_plan
from agent.config.load import load_inventory
from agent.offsite.plan import Objects, Upload, storage_usd_per_month
from agent.offsite.prices import load_prices
from agent.paths import ServerPaths
from agent.repository import backups_dir
from agent.runlog import DrillRecord, write_drill

GB = 2**30
MIB = 2**20
INVENTORY = "server: {address: 10.0.0.1}\nhosts:\n  web1: {address: 10.0.0.5}\n"
Dupctl = Callable[..., tuple[int, str, str]]


@pytest.fixture
def dupctl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Dupctl:
    """`dupctl --root TMP offsite plan ARGS...` in-process: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(["--root", str(tmp_path), "offsite", "plan", *args])
        except SystemExit as exit:  # argparse's errors
            code = exit.code if isinstance(exit.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


def planned(dupctl: Dupctl, *args: str) -> Any:
    code, out, err = dupctl(*args, "--json")
    assert code == 0, err
    return json.loads(out)


def restore_tier(entry: dict[str, Any], name: str) -> dict[str, Any]:
    return next(tier for tier in entry["restore"] if tier["tier"] == name)


def test_standard_1000_files_of_1mib(dupctl: Dupctl) -> None:
    plan = planned(dupctl, "--files", "1000", "--file-size", "1MiB", "--volsize", "200")
    dupstack, sync = plan["dupstack"], plan["per_file_sync"]
    # Full: 1000 MiB in 200 MiB volumes = 5 volumes, + manifest + signatures.
    # Signatures: blocks of isqrt(2**20) = 1024 B, so 1024 blocks: 512 + 12 + 12 * 1024 a file.
    volumes, manifest, signatures = 1000 * MIB, 1024 + 64 * 1000, 1000 * (512 + 12 + 12 * 1024)
    assert dupstack["objects"] == 7
    assert dupstack["bytes"] == volumes + manifest + signatures
    assert dupstack["put_cost_usd"] == pytest.approx(7 * 0.005 / 1000)
    full_month = (volumes + manifest + signatures) / GB * 0.023
    assert dupstack["storage_usd_per_month"] == pytest.approx(full_month, abs=1e-6)
    # Incremental: 1% = 10 files = 10 MiB: 1 volume, + manifest + signatures.
    incremental = dupstack["incremental"]
    assert incremental["objects"] == 3
    assert incremental["bytes"] == 10 * MIB + (1024 + 640) + 10 * (512 + 12 + 12 * 1024)
    # STANDARD: no thaw, no retrieval fee; 7 GETs and every byte out at $0.09/GB.
    (instant,) = dupstack["restore"]
    assert instant["tier"] == "instant" and instant["hours"] == 0
    egress = (volumes + manifest + signatures) / GB * 0.09
    assert instant["cost_usd"] == pytest.approx(7 * 0.0004 / 1000 + egress, abs=1e-6)
    # Retention: 4 chains of a full and 6 incrementals; a full every 7 days; no minimum days.
    kept = dupstack["retention"]
    assert kept["objects"] == 4 * (7 + 6 * 3)
    inc_month = incremental["bytes"] / GB * 0.023
    assert kept["storage_usd_per_month"] == pytest.approx(4 * (full_month + 6 * inc_month), 1e-5)
    assert kept["put_usd_per_month"] == pytest.approx((7 + 6 * 3) * 0.005 / 1000 * 30 / 7, 1e-4)
    assert kept["early_deletion_usd_per_chain"] == 0
    # Per-file sync: 1000 objects of 1 MiB as they are.
    assert sync["objects"] == 1000
    assert sync["put_cost_usd"] == pytest.approx(1000 * 0.005 / 1000)
    assert sync["storage_usd_per_month"] == pytest.approx(1000 * MIB / GB * 0.023, abs=1e-6)
    assert sync["incremental"]["objects"] == 10


def test_glacier_ir_small_files_minimum_size_and_early_deletion(dupctl: Dupctl) -> None:
    plan = planned(
        dupctl,
        "--files",
        "100000",
        "--file-size",
        "4KiB",
        "--compression",
        "2",
        "--volsize",
        "100",
        "--storage-class",
        "GLACIER_IR",
    )
    dupstack, sync = plan["dupstack"], plan["per_file_sync"]
    # Per-file sync: 100,000 PUTs at $0.02 per 1000; each 4 KiB object billed as 128 KiB.
    assert sync["put_cost_usd"] == pytest.approx(100_000 * 0.02 / 1000)  # $2
    assert sync["storage_usd_per_month"] == pytest.approx(100_000 * 131072 / GB * 0.004)
    # dupstack: 100,000 * 4096 / 2 = 204,800,000 B: a 100 MiB volume and one of 99,942,400 B.
    data = 100_000 * 4096 // 2
    assert dupstack["objects"] == 2 + 2
    assert dupstack["put_cost_usd"] == pytest.approx((2 * 0.02 + 2 * 0.005) / 1000)
    # In STANDARD: the manifest and signatures of 4 KiB files (8 blocks of 512 B: 620 B).
    metadata = (1024 + 64 * 100_000) + 100_000 * (512 + 12 + 12 * 8)
    assert dupstack["storage_usd_per_month"] == pytest.approx(
        data / GB * 0.004 + metadata / GB * 0.023, abs=1e-6
    )
    # A chain goes at 28 days (4 fulls, 7 days apart), GLACIER_IR keeps charging 90: the full
    # 62 days more, the incrementals (1000 files, 2,048,000 B, days 1..6) 63..68 days.
    kept = dupstack["retention"]
    assert kept["full_kept_days"] == 28 and kept["min_storage_days"] == 90
    incremental = 1000 * 4096 // 2
    per_chain = (data * 62 + incremental * (63 + 64 + 65 + 66 + 67 + 68)) / GB * 0.004 / 30
    assert kept["early_deletion_usd_per_chain"] == pytest.approx(per_chain, abs=1e-6)
    assert kept["early_deletion_usd_per_month"] == pytest.approx(per_chain * 30 / 7, abs=1e-6)
    # Restore: no thaw; $0.03/GB retrieval of the volumes, GETs, egress of every byte.
    (instant,) = dupstack["restore"]
    expected = (2 * 0.01 + 2 * 0.0004) / 1000 + data / GB * 0.03 + (data + metadata) / GB * 0.09
    assert instant["cost_usd"] == pytest.approx(expected, abs=1e-6)


def test_the_minimum_billable_size_applies_to_volumes_too() -> None:
    prices = load_prices("STANDARD_IA")
    small_volume = Upload(stored=(Objects(1, 1000),), metadata=(Objects(1, 2000),))
    expected = (131072 * 0.0125 + 2000 * 0.023) / GB
    assert storage_usd_per_month(small_volume, prices) == pytest.approx(expected)


def test_the_guides_example(dupctl: Dupctl) -> None:
    plan = planned(
        dupctl,
        "--files",
        "10000000",
        "--file-size",
        "1KiB",
        "--volsize",
        "1024",
        "--storage-class",
        "DEEP_ARCHIVE",
    )
    dupstack, sync = plan["dupstack"], plan["per_file_sync"]
    # Synced file by file: 10,000,000 PUTs at $0.05 per 1000 = $500.
    assert sync["objects"] == 10_000_000
    assert sync["put_cost_usd"] == pytest.approx(500)
    # Each object: 1 KiB + 32 KiB overhead in DEEP_ARCHIVE, 8 KiB in STANDARD.
    assert sync["storage_usd_per_month"] == pytest.approx(
        10**7 * (1024 + 32768) / GB * 0.00099 + 10**7 * 8192 / GB * 0.023, abs=1e-6
    )
    # Through duplicity: ceil(10,240,000,000 B / 1 GiB) = 10 volumes + manifest + signatures.
    assert dupstack["objects"] == 10 + 2
    assert dupstack["put_cost_usd"] == pytest.approx((10 * 0.05 + 2 * 0.005) / 1000)
    # Restore: no expedited tier for Deep Archive; bulk is 10 thaws at $0.025 per 1000 plus
    # 12 GETs, $0.0025/GB of the volumes, and every byte out (1 KiB files: 2 blocks, 548 B).
    assert [(tier["tier"], tier["hours"]) for tier in dupstack["restore"]] == [
        ("standard", 12),
        ("bulk", 48),
    ]
    data = 10**7 * 1024
    everything = data + (1024 + 64 * 10**7) + 10**7 * (512 + 12 + 12 * 2)
    bulk = (10 * (0.025 + 0.0004) + 2 * 0.0004) / 1000 + data / GB * 0.0025 + everything / GB * 0.09
    assert restore_tier(dupstack, "bulk")["cost_usd"] == pytest.approx(bulk, abs=1e-6)
    # File by file the same restore needs 10,000,000 thaws: $254 of requests alone.
    assert restore_tier(sync, "bulk")["requests_usd"] == pytest.approx(10**7 * 0.0254 / 1000)


def test_the_table_says_the_same(dupctl: Dupctl) -> None:
    code, out, _ = dupctl(
        "--files",
        "10000000",
        "--file-size",
        "1KiB",
        "--volsize",
        "1024",
        "--storage-class",
        "DEEP_ARCHIVE",
    )
    assert code == 0
    assert "10,000,000 files of 1 KiB (DEEP_ARCHIVE, prices of us-east-1 as of" in out
    assert any(line.split()[-2:] == ["10,000,000", "12"] for line in out.splitlines())
    assert "$500.00" in out and "before DEEP_ARCHIVE's 180" in out


def test_swift_is_priced_by_the_prices_file(dupctl: Dupctl, tmp_path: Path) -> None:
    plan = planned(dupctl, "--files", "1000", "--file-size", "1MiB", "--storage-class", "swift")
    assert plan["dupstack"]["put_cost_usd"] == 0 and plan["per_file_sync"]["put_cost_usd"] == 0
    own = tmp_path / "cloud.json"
    own.write_text(
        json.dumps(
            {"services": {"swift": {"classes": {"swift": {"storage_usd_per_gb_month": 0.02}}}}}
        )
    )
    plan = planned(
        dupctl,
        "--files",
        "1000",
        "--file-size",
        "1MiB",
        "--storage-class",
        "swift",
        "--prices",
        str(own),
    )
    assert plan["per_file_sync"]["storage_usd_per_month"] == pytest.approx(1000 * MIB / GB * 0.02)
    assert plan["prices"]["override"] == str(own)


def test_a_prices_file_overrides_single_keys(dupctl: Dupctl, tmp_path: Path) -> None:
    override = tmp_path / "prices.json"
    override.write_text(
        '{"services": {"s3": {"classes": {"DEEP_ARCHIVE": {"put_usd_per_1000": 0.06}}}}}'
    )
    plan = planned(
        dupctl,
        "--files",
        "10000000",
        "--file-size",
        "1KiB",
        "--storage-class",
        "DEEP_ARCHIVE",
        "--prices",
        str(override),
    )
    assert plan["per_file_sync"]["put_cost_usd"] == pytest.approx(600)
    assert plan["per_file_sync"]["storage_usd_per_month"] > 2  # the rest as it was


def test_the_inventorys_prices_override_and_prices_file_goes_over_them(
    dupctl: Dupctl, tmp_path: Path
) -> None:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(
        INVENTORY + "offsite:\n  targets: {s: {type: s3, bucket: bkt, credentials_file: /c}}\n"
        "  prices: {services: {s3: {region: eu-west-1, classes: {DEEP_ARCHIVE: "
        "{put_usd_per_1000: 0.06, storage_usd_per_gb_month: 0.002}}}}}\n"
    )
    args = ("--files", "10000000", "--file-size", "1KiB", "--storage-class", "DEEP_ARCHIVE")
    plan = planned(dupctl, *args)
    assert plan["per_file_sync"]["put_cost_usd"] == pytest.approx(10_000_000 * 0.06 / 1000)
    assert plan["prices"]["region"] == "eu-west-1" and plan["prices"]["inventory"] is True
    code, out, _ = dupctl(*args)
    assert code == 0 and "prices of eu-west-1 as of" in out and "offsite.prices" in out
    override = tmp_path / "prices.json"
    override.write_text(
        '{"services": {"s3": {"classes": {"DEEP_ARCHIVE": {"put_usd_per_1000": 1}}}}}'
    )
    plan = planned(dupctl, *args, "--prices", str(override))
    assert plan["per_file_sync"]["put_cost_usd"] == pytest.approx(10_000)
    assert plan["prices"]["region"] == "eu-west-1"  # the inventory's, under the file's
    # 1 KiB objects in Deep Archive: each billed 1 KiB + 32 KiB there, 8 KiB in STANDARD
    per_object = (33 * 1024 * 0.002 + 8 * 1024 * 0.023) / GB
    assert plan["per_file_sync"]["storage_usd_per_month"] == pytest.approx(10_000_000 * per_object)


@pytest.mark.parametrize(
    ("prices", "says"),
    [
        ("{services: {s3: {clases: {}}}}", "offsite.prices: services.s3.clases: no such price "
         "(did you mean services.s3.classes?)"),
        ("{services: {s3: {classes: {GLACIER: {min_storage_days: -3}}}}}",
         "services.s3.classes.GLACIER.min_storage_days: expected a number of at least 0, not -3"),
        ("[1]", "offsite.prices: expected a mapping shaped like agent/data/prices.json"),
    ],
)  # fmt: skip
def test_a_bad_price_in_the_inventory_is_named_with_its_key(
    dupctl: Dupctl, tmp_path: Path, prices: str, says: str
) -> None:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(
        INVENTORY + "offsite:\n  targets: {s: {type: s3, bucket: bkt, credentials_file: /c}}\n"
        f"  prices: {prices}\n"
    )
    code, _, err = dupctl("--files", "10", "--file-size", "1KiB")
    assert code == 2 and says in err and "dupstack.yaml:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '{"services": {"s3": {"classes": {"DEEP_ARCHIVE": {"put_usd_per_100": 1}}}}}',
            "services.s3.classes.DEEP_ARCHIVE.put_usd_per_100: no such price (did you mean "
            "services.s3.classes.DEEP_ARCHIVE.put_usd_per_1000?)",
        ),
        (
            '{"services": {"s3": {"egress_usd_per_gb": -1}}}',
            "services.s3.egress_usd_per_gb: expected a number of at least 0, not -1",
        ),
        ('{"services": {"s3": {"classes": 3}}}', "services.s3.classes: expected a mapping"),
        ("{oops", ":1: not JSON"),
        ("[]", "expected a JSON object"),
    ],
)
def test_a_bad_prices_file_is_named(dupctl: Dupctl, tmp_path: Path, text: str, says: str) -> None:
    override = tmp_path / "prices.json"
    override.write_text(text)
    code, out, err = dupctl(
        "--files",
        "10",
        "--file-size",
        "1KiB",
        "--storage-class",
        "DEEP_ARCHIVE",
        "--prices",
        str(override),
    )
    assert code == 2 and out == ""
    assert str(override) in err and says in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--files", "10", "--file-size", "1XB"], "argument --file-size: '1XB' is not a size"),
        (["--files", "10", "--file-size", "10M"], "argument --file-size: '10M' is not a size"),
        (["--files", "10", "--file-size", "0B"], "argument --file-size"),
        (["--files", "0", "--file-size", "1KiB"], "argument --files"),
        (["--files", "ten", "--file-size", "1KiB"], "argument --files"),
        (["--files", "10", "--file-size", "1KiB", "--volsize", "6000"], "argument --volsize"),
        (
            ["--files", "10", "--file-size", "1KiB", "--compression", "0.5"],
            "argument --compression",
        ),
        (
            ["--files", "10", "--file-size", "1KiB", "--change-percent", "101"],
            "argument --change-percent",
        ),
        (
            ["--files", "10", "--file-size", "1KiB", "--storage-class", "GLACIER_DA"],
            "argument --storage-class",
        ),
        (["--files", "10", "--file-size", "1KiB", "--fulls-kept", "0"], "argument --fulls-kept"),
        (["--files", "10"], "--files needs --file-size"),
        (["--file-size", "1KiB"], "--file-size is for a hypothetical host"),
        (["--volsize", "1024"], "--volsize is for a hypothetical host"),
        (
            ["web1", "--files", "10", "--file-size", "1KiB"],
            "HOST (its sets on the volume) or --files",
        ),
    ],
)
def test_bad_flags_are_named(dupctl: Dupctl, args: list[str], flag: str) -> None:
    code, out, err = dupctl(*args)
    assert code == 2 and out == ""
    assert flag in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "size"),
    [("512", 512), ("1KiB", 1024), ("10MB", 10_000_000), ("2GiB", 2 * GB), ("1.5 kB", 1500)],
)
def test_sizes(text: str, size: int) -> None:
    assert offsite_plan.file_size(text) == size


def write_set(folder: Path, files: dict[str, int], uid: int = 0) -> None:
    """Files named as duplicity names them, of the given sizes, owned by `uid`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, size in files.items():
        with open(folder / name, "wb") as file:
            file.truncate(size)
        os.chown(folder / name, uid, 0)


@pytest.mark.root
def test_the_sets_on_the_volume(dupctl: Dupctl, tmp_path: Path) -> None:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(INVENTORY)
    folder = backups_dir(paths, load_inventory(paths).host("web1"))
    full, inc = "20260101T010000Z", "20260102T010000Z"
    write_set(
        folder,
        {
            f"duplicity-full.{full}.vol1.difftar.gpg": 204_800,
            f"duplicity-full.{full}.vol2.difftar.gpg": 50_000,
            f"duplicity-full.{full}.manifest.gpg": 900,
            f"duplicity-full-signatures.{full}.sigtar.gpg": 5_000,
            f"duplicity-inc.{full}.to.{inc}.vol1.difftar.gpg": 1_000,
            f"duplicity-inc.{full}.to.{inc}.manifest.gpg": 500,
            f"duplicity-new-signatures.{full}.to.{inc}.sigtar.gpg": 300,
            "notes.txt": 100,  # not duplicity's: never copied
        },
    )
    # Still the host's own (a run not yet checked and sealed): not in its history yet.
    write_set(folder, {f"duplicity-inc.{inc}.to.20260103T010000Z.vol1.difftar.gpg": 7}, 54321)

    (web1,) = planned(dupctl, "--storage-class", "STANDARD_IA")
    assert web1["host"] == "web1" and web1["sets"] == 2
    on_volume = web1["on_volume"]
    assert on_volume["objects"] == 7
    assert on_volume["bytes"] == 204_800 + 50_000 + 900 + 5_000 + 1_000 + 500 + 300
    assert on_volume["put_cost_usd"] == pytest.approx((3 * 0.01 + 4 * 0.005) / 1000)
    # The latest full: vol2 and the incremental's volume are billed as 128 KiB in STANDARD_IA.
    dupstack = web1["dupstack"]
    assert dupstack["objects"] == 4 and dupstack["incremental"]["objects"] == 3
    assert dupstack["storage_usd_per_month"] == pytest.approx(
        ((204_800 + 131_072) * 0.0125 + (900 + 5_000) * 0.023) / GB, abs=1e-6
    )
    assert web1["per_file_sync"] is None  # the host's file count is not known before a drill

    write_drill(
        paths,
        DrillRecord(
            host="web1",
            start="2026-01-02T06:00:00Z",
            duration=1.0,
            set_time=inc,
            result="pass",
            files_in_set=100,
            files_on_host=100,
            sampled=10,
            compared=10,
            changed=0,
        ),
    )
    (web1,) = planned(dupctl, "web1", "--storage-class", "STANDARD_IA")
    # 100 files sharing the full's 254,800 stored bytes: 2548 B each, billed as 128 KiB.
    sync = web1["per_file_sync"]
    assert sync["objects"] == 100 and web1["files"] == 100
    assert sync["storage_usd_per_month"] == pytest.approx(100 * 131_072 / GB * 0.0125, abs=1e-6)
    code, out, _ = dupctl("web1")
    assert code == 0 and out.startswith("web1: 2 sets on the volume, 7 objects")


@pytest.mark.root
def test_a_host_without_sets_and_an_unknown_host(dupctl: Dupctl, tmp_path: Path) -> None:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(INVENTORY)
    (web1,) = planned(dupctl)
    assert web1["sets"] == 0 and web1["dupstack"] is None and web1["per_file_sync"] is None
    code, _, err = dupctl("db9")
    assert code == 2 and "no host 'db9'" in err
