"""Offsite copies to S3 with a Deep Archive class: moto's S3 server inside the backup
server's namespace, real duplicity reading the bucket. Pushed after a backup, idempotent, a
changed object caught and copied again; listing without a thaw; a restore that needs archived
volumes refused at once, then thawed (only what it needs, a resumable ticket) and restored
byte for byte. One fleet: `bs` and web1; the tests run in order."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
import yaml
from moto.server import ThreadedMotoServer

from agent.offsite.prices import load_prices
from fleet import DIE_WITH_PARENT, HOST_ENV, Fleet, Host
from fleet.backup import backup_server, dupctl, ok, set_host_options
from tests.agent.backup_fleet import DATA, snapshot, tenant

pytestmark = pytest.mark.root
BUCKET = "dr-copies"
CREDENTIALS = "/etc/dupstack/offsite/deep.ini"
PREFIX = "dupstack/web1/"


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        backup_server(fleet)
        tenant(fleet, "web1")
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture(scope="module")
def web1(fleet: Fleet) -> Host:
    return fleet.hosts["web1"]


@pytest.fixture(scope="module")
def s3(bs: Host) -> Iterator[str]:
    """moto's S3 on 127.0.0.1 inside bs; its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    bs.call(server.start)
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    bs.call(lambda: client(endpoint).create_bucket(Bucket=BUCKET))
    yield endpoint
    bs.call(server.stop)


def client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def configured(bs: Host, s3: str) -> None:
    file = bs.path(CREDENTIALS)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("aws_access_key_id = test\naws_secret_access_key = test\n")
    file.chmod(0o600)
    target = {"type": "s3", "endpoint_url": s3, "region": "us-east-1", "bucket": BUCKET,
              "storage_class": "DEEP_ARCHIVE", "credentials_file": CREDENTIALS,
              "keep_full": 1}  # fmt: skip
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    inventory.write_text(inventory.read_text() + "offsite:\n  targets:\n    deep: "
                         + json.dumps(target) + "\n")  # fmt: skip


def objects(bs: Host, s3: str) -> dict[str, dict[str, Any]]:
    """{name: head} of web1's objects in the bucket."""

    def read() -> dict[str, dict[str, Any]]:
        api = client(s3)
        keys = [o["Key"] for o in api.list_objects_v2(Bucket=BUCKET, Prefix=PREFIX)["Contents"]]
        return {key.removeprefix(PREFIX): api.head_object(Bucket=BUCKET, Key=key) for key in keys}

    return bs.call(read)


def test_a_backup_pushes_its_sets_volumes_archived_the_rest_standard(bs: Host, s3: str) -> None:
    done = dupctl(bs, "backup", "web1", "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert [
        (h["hook"], h["step"], h["result"]) for h in run["hooks"] if h["hook"] != "metadata"
    ] == [("offsite", "push to deep", "ok")]
    local = sorted(p.name for p in bs.path("/mnt/vdb/hosts/dup-web1/backups").iterdir())
    there = objects(bs, s3)
    assert sorted(there) == local
    for name, head in there.items():
        archived = ".difftar." in name
        assert head.get("StorageClass", "STANDARD") == ("DEEP_ARCHIVE" if archived else "STANDARD")
        size = bs.path(f"/mnt/vdb/hosts/dup-web1/backups/{name}").stat().st_size
        assert head["ContentLength"] == size and len(head["Metadata"]["sha256"]) == 64


def test_a_second_push_copies_nothing_and_a_changed_object_is_copied_again(
    bs: Host, s3: str
) -> None:
    records = json.loads(ok(dupctl(bs, "offsite", "push", "--json")))
    web1 = [r for r in records if r["host"] == "web1"]
    assert [(r["copied"], r["skipped"] > 0) for r in web1] == [(0, True)]
    escrow = bs.call(lambda: client(s3).list_objects_v2(Bucket=BUCKET, Prefix="dupstack/_escrow/"))
    assert any(o["Key"].endswith("escrow.tar.gpg") for o in escrow["Contents"])
    [manifest] = [name for name in objects(bs, s3) if name.endswith(".manifest.gpg")]
    sha = objects(bs, s3)[manifest]["Metadata"]["sha256"]  # kept: only the content changes
    size = objects(bs, s3)[manifest]["ContentLength"]
    bs.call(lambda: client(s3).put_object(Bucket=BUCKET, Key=PREFIX + manifest,
                                          Body=b"x" * size, Metadata={"sha256": sha}))  # fmt: skip
    done = dupctl(bs, "offsite", "push", "web1")
    assert done.returncode == 0, done.stderr
    assert "1 changed or missing offsite, copied again" in done.stdout
    local = bs.path(f"/mnt/vdb/hosts/dup-web1/backups/{manifest}").read_bytes()
    body = bs.call(
        lambda: client(s3).get_object(Bucket=BUCKET, Key=PREFIX + manifest)["Body"].read()
    )
    assert body == local
    [signatures] = [name for name in objects(bs, s3) if "signatures" in name]
    bs.call(lambda: client(s3).delete_object(Bucket=BUCKET, Key=PREFIX + signatures))
    done = dupctl(bs, "offsite", "push", "web1")
    assert done.returncode == 0 and "1 changed or missing offsite, copied again" in done.stdout
    assert signatures in objects(bs, s3)
    [entry] = json.loads(ok(dupctl(bs, "offsite", "status", "web1", "--json")))
    assert (entry["target"], entry["sets_copied"], entry["sets_pending"]) == ("deep", 1, 0)
    assert entry["objects_by_class"]["DEEP_ARCHIVE"] >= 1 and entry["last_push"]
    # a month of it: volumes billed their size + 32 KiB in Deep Archive and 8 KiB in
    # STANDARD each (agent/data/prices.json), the rest at their size in STANDARD
    deep, standard = load_prices("DEEP_ARCHIVE").volumes, load_prices("STANDARD").volumes
    expected = (
        sum(
            (max(h["ContentLength"], deep.min_billable_bytes) + 32 * 1024)
            * deep.storage_usd_per_gb_month
            + 8 * 1024 * standard.storage_usd_per_gb_month
            if h.get("StorageClass") == "DEEP_ARCHIVE"
            else h["ContentLength"] * standard.storage_usd_per_gb_month
            for h in objects(bs, s3).values()
        )
        / 2**30
    )
    assert entry["usd_per_month"] == pytest.approx(expected, abs=1e-6) and expected > 0


def test_the_copy_lists_without_a_thaw(bs: Host) -> None:
    listing = ok(dupctl(bs, "list", "web1", "--from", "deep"))
    assert f"{DATA}/file7.txt" in listing


def test_a_restore_needing_archived_volumes_is_refused_at_once_then_thawed(
    bs: Host, web1: Host, s3: str
) -> None:
    done = dupctl(bs, "restore", "web1", "--from", "deep", "--path", f"{DATA}/file3.txt",
                  "--to", "/root/offsite")  # fmt: skip
    assert done.returncode == 18, done.stderr
    assert not bs.path("/root/offsite").exists()  # a refused restore leaves nothing behind
    assert not list(bs.path("/root").glob(".dupstack-restoring-*"))
    done = dupctl(bs, "restore", "web1", "--from", "deep", "--to", "/root/offsite")
    assert done.returncode == 18, done.stderr
    assert "volumes needed from deep are archived (DEEP_ARCHIVE" in done.stderr
    assert "--thaw TIER" in done.stderr and "bulk: within 48 hours" in done.stderr
    assert "expedited" not in done.stderr  # Deep Archive has no expedited tier
    done = dupctl(bs, "restore", "web1", "--from", "deep", "--to", "/root/offsite",
                  "--thaw", "expedited")  # fmt: skip
    assert done.returncode == 2 and "not offered for DEEP_ARCHIVE" in done.stderr
    # a thaw that takes three looks, as a real one takes hours
    transition = {"model_name": "s3::keyrestore",
                  "transition": {"progression": "manual", "times": 3}}  # fmt: skip
    bs.call(lambda: requests.post(f"{s3}/moto-api/state-manager/set-transition",
                                  json=transition, timeout=10))  # fmt: skip
    done = dupctl(bs, "restore", "web1", "--from", "deep", "--to", "/root/offsite",
                  "--thaw", "bulk", "--no-wait")  # fmt: skip
    assert done.returncode == 18, done.stderr
    assert "thawing, readable by about" in done.stderr
    ticket = json.loads(bs.path("/mnt/vdb/.dupstack/thaw/web1-deep.json").read_text())
    assert list(ticket["requested"]) and all(".difftar." in n for n in ticket["requested"])
    done = dupctl(bs, "restore", "web1", "--from", "deep", "--to", "/root/offsite",
                  "--thaw", "bulk")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "waiting for" in done.stdout
    assert snapshot(bs, f"/root/offsite{DATA}") == snapshot(web1)
    heads = objects(bs, s3)
    thawed = [name for name, head in heads.items() if "Restore" in head]
    assert sorted(thawed) == sorted(ticket["requested"])  # only what the restore needed


def test_a_restore_from_offsite_goes_onto_the_host_in_place_or_into_a_folder(
    bs: Host, web1: Host
) -> None:
    """The volumes thawed above stay readable: onto web1, never over what is there."""
    file = web1.path(f"{DATA}/file3.txt")
    content, mode = file.read_bytes(), file.stat().st_mode
    os.chown(file, 1234, 5678)
    ok(dupctl(bs, "backup", "web1"))  # the owner by number, pushed after the backup
    again = ("restore", "web1", "--from", "deep", "--path", f"{DATA}/file3.txt", "--to-host")
    done = dupctl(bs, *again)
    assert done.returncode == 2 and "exists on web1: restore never overwrites" in done.stderr
    file.unlink()
    done = dupctl(bs, *again, "--thaw", "bulk")
    assert done.returncode == 0, done.stderr
    assert "every file of" in done.stdout and f"to {DATA}/file3.txt on web1" in done.stdout
    info = file.stat()
    assert (file.read_bytes(), info.st_mode, info.st_uid, info.st_gid) == (content, mode, 1234,
                                                                           5678)  # fmt: skip
    done = dupctl(bs, "restore", "web1", "--from", "deep", "--path", DATA, "--to-host",
                  "--to", "/root/from-deep", "--thaw", "bulk")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert snapshot(web1, f"/root/from-deep{DATA}") == snapshot(web1)
    assert not list(web1.path("/root").glob(".dupstack-restore-*"))
    assert not list(bs.path("/mnt/vdb/.dupstack/restoring").iterdir())  # no copy left here


def test_offsite_prune_keeps_young_archived_chains_unless_forced(bs: Host, s3: str) -> None:
    ok(dupctl(bs, "backup", "web1", "--full"))  # a second chain, pushed after the backup
    before = set(objects(bs, s3))
    full = sorted(n for n in before if n.startswith("duplicity-full.") and "manifest" in n)[0]
    done = dupctl(bs, "offsite", "prune", "--json")
    assert done.returncode == 0, done.stderr
    old, newest = json.loads(done.stdout)
    assert (old["removed"], newest["removed"]) == (False, False)
    assert "younger than their class's minimum duration" in old["why"]
    assert old["early_deletion_usd"] > 0 and newest["why"] == "the newest chain"
    assert set(objects(bs, s3)) == before
    done = dupctl(bs, "offsite", "prune", "--force")
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stdout and "early-deletion charges" in done.stdout
    after = set(objects(bs, s3))
    gone = before - after
    assert full in gone and all(full.split(".")[1] in name for name in gone)
    assert bs.path(f"/mnt/vdb/hosts/dup-web1/backups/{full}").exists()  # the volume keeps it
    records = json.loads(ok(dupctl(bs, "offsite", "push", "web1", "--json")))
    assert [r["copied"] for r in records if r["host"] == "web1"] == [0]  # not copied back
    assert set(objects(bs, s3)) == after


def set_offsite(bs: Host, **changes: Any) -> None:
    """Change offsite keys (push_after_backup, or the target's with target_ prefix)."""
    file = bs.path("/etc/duplicity/dupstack.yaml")
    document = yaml.safe_load(file.read_text())
    for key, value in changes.items():
        if key.startswith("target_"):
            document["offsite"]["targets"]["deep"][key.removeprefix("target_")] = value
        else:
            document["offsite"][key] = value
    file.write_text(yaml.safe_dump(document))


def test_a_push_and_a_backup_of_the_same_host_hold_locks_of_their_own(bs: Host) -> None:
    """A long push never keeps the host's backups and prunes waiting; two pushes (or a push
    and an offsite prune) of one host never run at once."""
    set_offsite(bs, push_after_backup=False)
    lock = bs.path("/var/lib/dupstack/locks/web1.offsite.lock")
    lock.touch()
    with lock.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running push holds it
        held.write(f"{os.getpid()}\n")
        held.flush()
        ok(dupctl(bs, "backup", "web1"))
        ok(dupctl(bs, "prune", "web1"))
        done = dupctl(bs, "offsite", "push", "web1")
    assert done.returncode == 17, done.stderr  # the push failed for that host
    assert f"an offsite push or prune of web1 (pid {os.getpid()}) holds" in done.stdout
    host = bs.path("/var/lib/dupstack/locks/web1.lock")
    with host.open("r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running backup holds it
        records = json.loads(ok(dupctl(bs, "offsite", "push", "web1", "--json")))
    assert [r["copied"] > 0 for r in records if r["host"] == "web1"] == [True]


def test_a_push_killed_at_any_point_leaves_nothing_half_copied(
    bs: Host, web1: Host, s3: str
) -> None:
    set_offsite(bs, push_after_backup=False, target_bandwidth_limit="1M")
    set_host_options(bs, "web1", volsize=1)
    for index in range(6):
        web1.path(f"{DATA}/big{index}.bin").write_bytes(os.urandom(1 << 20))
    ok(dupctl(bs, "backup", "web1"))
    local = bs.path("/mnt/vdb/hosts/dup-web1/backups")
    ledger = bs.path("/var/lib/dupstack/offsite/deep/web1.json")
    known = len(json.loads(ledger.read_text())["objects"])
    push = subprocess.Popen([*DIE_WITH_PARENT, *bs.keeper.nsenter(["dupctl", "offsite", "push",
                            "web1"])], env=HOST_ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(json.loads(ledger.read_text())["objects"]) < known + 2:
        assert push.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    push.kill()  # kill -9 mid-push: some volumes copied, some under way
    push.wait()
    there = objects(bs, s3)
    for name, head in there.items():  # whatever is there is whole and exactly the file
        file = local / name
        if file.exists():
            assert head["ContentLength"] == file.stat().st_size
            assert head["Metadata"]["sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    for stem in {
        p.name.removesuffix(".manifest.gpg") for p in local.glob("*.manifest.gpg")
    }:  # a set's manifest is there only with all its volumes
        if f"{stem}.manifest.gpg" in there:
            volumes = [p.name for p in local.glob(f"{stem}.vol*.difftar.gpg")]
            assert all(volume in there for volume in volumes), stem
    # a multipart upload left behind (as a killed multipart PUT would) is aborted
    bs.call(lambda: client(s3).create_multipart_upload(Bucket=BUCKET, Key=PREFIX + "stale"))
    set_offsite(bs, target_bandwidth_limit=None)
    records = json.loads(ok(dupctl(bs, "offsite", "push", "web1", "--json")))
    [record] = [r for r in records if r["host"] == "web1"]
    # what the killed push copied but had not recorded yet is checked, not copied again
    assert record["copied"] + record["skipped"] > known and record["aborted"] == 1
    uploads = bs.call(lambda: client(s3).list_multipart_uploads(Bucket=BUCKET))
    assert not uploads.get("Uploads")
    there = objects(bs, s3)
    pruned = json.loads(ledger.read_text())["objects"]
    for file in local.iterdir():
        if not pruned.get(file.name, {}).get("pruned"):
            assert there[file.name]["ContentLength"] == file.stat().st_size


def test_a_push_on_a_terminal_shows_its_bytes_in_a_bar(bs: Host, web1: Host) -> None:
    web1.path(f"{DATA}/more.bin").write_bytes(os.urandom(3 << 20))
    ok(dupctl(bs, "backup", "web1"))  # push_after_backup is off since the test above
    done = bs.run(["script", "-qec", "dupctl offsite push web1", "/dev/null"], check=False)
    assert done.returncode == 0, done.stdout
    assert re.search(r"web1 -> deep .*\d+(\.\d+)?/\d+(\.\d+)? MB", done.stdout), done.stdout
    assert "web1 -> deep: " in done.stdout and "copied" in done.stdout


def test_wrong_credentials_and_a_missing_bucket_are_clear_errors(bs: Host) -> None:
    file = bs.path(CREDENTIALS)
    good = file.read_text()
    file.write_text("aws_access_key_id = test\n")  # the secret key missing
    done = dupctl(bs, "offsite", "push", "web1")
    assert done.returncode == 17, done.stderr  # each copy failed, typed, no traceback
    assert "lacks aws_access_key_id and aws_secret_access_key" in done.stderr
    file.write_text(good)
    set_offsite(bs, target_bucket="no-such-bucket")
    done = dupctl(bs, "offsite", "push", "web1")
    assert done.returncode == 17 and "NoSuchBucket" in done.stderr, done.stderr
    assert "test" not in done.stderr.replace("dupstack", "")  # no credential shown
    done = dupctl(bs, "list", "web1", "--from", "deep")
    assert done.returncode == 17 and "NoSuchBucket" in done.stderr, done.stderr
    set_offsite(bs, target_bucket=BUCKET)
