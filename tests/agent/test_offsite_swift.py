"""Offsite copies to OpenStack Swift: Swift's own four servers on 127.0.0.1 (tempauth, v1
credentials), a host's sealed folder on a test root made by a real local duplicity run, and
dupctl as the operator runs it. Pushed under PREFIX/HOST/ with duplicity's names, idempotent,
a changed object caught, a killed push completed, large objects in segments, clear errors,
and stock duplicity restoring from swift://. The tests run in order."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import swiftclient
import yaml

from agent import execute
from agent.config.load import load_inventory
from agent.duplicity.backup import backup_command
from agent.duplicity.common import Selection
from agent.host_passphrase import read_host_passphrase
from agent.offsite.push import open_store
from agent.paths import ServerPaths
from agent.repository import backups_dir, server_repository

pytestmark = pytest.mark.root
BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
CONTAINER = "dr-copies"
USER, KEY = "test:tester", "testing-secret-key"
CREDENTIALS = "/etc/dupstack/offsite/swift.ini"
SERVERS = ("account", "container", "object", "proxy")


@dataclass(frozen=True)
class Swift:
    auth_url: str  # tempauth's /auth/v1.0

    def client(self) -> swiftclient.Connection:
        return swiftclient.Connection(authurl=self.auth_url, user=USER, key=KEY,
                                      auth_version="1", retries=0)  # fmt: skip


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def swift() -> Iterator[Swift]:
    """Swift's account, container, object and proxy servers on 127.0.0.1: one replica, one
    device in a folder of /tmp (ext4: xattrs), tempauth with Fernet tokens (no memcached)."""
    top = Path(tempfile.mkdtemp(prefix="swift-", dir="/tmp"))
    (top / "devices" / "d1").mkdir(parents=True)
    ports = {server: _free_port() for server in SERVERS}
    (top / "swift.conf").write_text(
        "[swift-hash]\nswift_hash_path_prefix = dupstack\nswift_hash_path_suffix = tests\n"
    )
    for ring in ("account", "container", "object"):
        builder = str(top / f"{ring}.builder")
        device = f"r1z1-127.0.0.1:{ports[ring]}/d1"
        for args in (("create", "4", "1", "1"), ("add", device, "100"), ("rebalance",)):
            subprocess.run([str(BIN / "swift-ring-builder"), builder, *args], check=True,
                           capture_output=True)  # fmt: skip
    common = (f"[DEFAULT]\nbind_ip = 127.0.0.1\nworkers = 0\nmount_check = false\n"
              f"swift_dir = {top}\ndevices = {top}/devices\n")  # fmt: skip
    for server in ("account", "container", "object"):
        (top / f"{server}.conf").write_text(
            f"{common}bind_port = {ports[server]}\n\n[pipeline:main]\npipeline = {server}-server"
            f"\n\n[app:{server}-server]\nuse = egg:swift#{server}\n"
        )
    fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    (top / "proxy.conf").write_text(
        f"{common}bind_port = {ports['proxy']}\n\n[pipeline:main]\n"
        "pipeline = catch_errors tempauth slo proxy-server\n\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n\n"
        "[filter:catch_errors]\nuse = egg:swift#catch_errors\n\n"
        "[filter:slo]\nuse = egg:swift#slo\n\n"
        f"[filter:tempauth]\nuse = egg:swift#tempauth\nuser_test_tester = {KEY} .admin\n"
        f"fernet_key_1 = {fernet}\nactive_fernet_key_id = 1\n"
    )
    servers = []
    for server in SERVERS:
        with (top / f"{server}.log").open("w") as log:
            servers.append(subprocess.Popen(
                [str(BIN / f"swift-{server}-server"), str(top / f"{server}.conf")],
                stdout=log, stderr=subprocess.STDOUT,
            ))  # fmt: skip
    auth_url = f"http://127.0.0.1:{ports['proxy']}/auth/v1.0"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert all(server.poll() is None for server in servers), "a swift server died"
            try:
                headers = {"X-Auth-User": USER, "X-Auth-Key": KEY}
                if requests.get(auth_url, headers=headers, timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "swift did not start"
            time.sleep(0.2)
        yield Swift(auth_url)
    finally:
        for server in servers:
            os.kill(server.pid, signal.SIGTERM)
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait()
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def paths(swift: Swift) -> Iterator[ServerPaths]:
    """A backup server's files under a short root (gpg's sockets), with hosts web1 and web10
    (whose name web1's is a prefix of), a swift target, and the key escrow on the volume."""
    top = Path(tempfile.mkdtemp(prefix="dupsw-", dir="/tmp"))
    paths = ServerPaths.from_root(top)
    paths.etc_dir.mkdir(parents=True)
    paths.passphrase_file.write_text("the stack secret of this test\n")
    paths.volume_state_dir.mkdir(parents=True)
    (paths.volume_state_dir / "escrow.tar.gpg").write_bytes(os.urandom(4096))
    (paths.volume_state_dir / "README.txt").write_text("how to recover\n")
    credentials = paths.under(CREDENTIALS)
    credentials.parent.mkdir(parents=True)
    credentials.write_text(f"auth_version = 1\nuser = {USER}\nkey = {KEY}\n")
    credentials.chmod(0o600)
    write_inventory(paths, swift)
    yield paths
    shutil.rmtree(top, ignore_errors=True)


def write_inventory(paths: ServerPaths, swift: Swift, **target: Any) -> None:
    """The inventory with the swift target's keys changed by `target` (None: removed)."""
    settings = {"type": "swift", "auth_url": swift.auth_url, "container": CONTAINER,
                "credentials_file": CREDENTIALS, "concurrency": 2, "keep_full": 1}  # fmt: skip
    settings = {k: v for k, v in {**settings, **target}.items() if v is not None}
    hosts = {name: {"address": f"10.0.0.{n}", "paths": [str(data_dir(paths, name))]}
             for n, name in enumerate(("web1", "web10"), 2)}  # fmt: skip
    document = {
        "server": {"address": "192.168.254.10", "port": 22},
        "defaults": {"volsize": 1, "keep_full": 4},
        "hosts": hosts,
        "offsite": {"push_after_backup": False, "targets": {"swift": settings}},
    }
    paths.config_file.write_text(yaml.safe_dump(document))


def data_dir(paths: ServerPaths, host: str) -> Path:
    return paths.root / "tenants" / host


def backup(paths: ServerPaths, host: str, *, full: bool = False) -> None:
    """A real duplicity run of the host's data into its folder on the volume, as root (so
    sealed: what a run's screening leaves)."""
    inventory = load_inventory(paths)
    config = inventory.hosts[host]
    backups_dir(paths, config).mkdir(parents=True, exist_ok=True)
    argv = backup_command(server_repository(paths, config), Selection(config.paths),
                          full=full, volsize=config.volsize)  # fmt: skip
    execute.run(argv, secret=read_host_passphrase(paths, host))


def dupctl(paths: ServerPaths, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dupctl"), "--root", str(paths.root), *args], env=ENV,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def objects(swift: Swift, host: str) -> dict[str, dict[str, str]]:
    """{name: HEAD headers} of the host's folder in the container."""
    client = swift.client()
    prefix = f"dupstack/{host}/"
    _, listing = client.get_container(CONTAINER, prefix=prefix, full_listing=True)
    return {item["name"].removeprefix(prefix): client.head_object(CONTAINER, item["name"])
            for item in listing}  # fmt: skip


def local(paths: ServerPaths, host: str) -> dict[str, Path]:
    folder = backups_dir(paths, load_inventory(paths).hosts[host])
    return {file.name: file for file in folder.iterdir()}


def sha256(file: Path) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def sets(paths: ServerPaths) -> None:
    """web1: a full and an incremental of several 1 MiB volumes; web10: one full."""
    for host in ("web1", "web10"):
        data = data_dir(paths, host)
        data.mkdir(parents=True)
        for index in range(5):
            (data / f"file{index}.txt").write_text(f"{host} file {index}\n" * 100)
        (data / "random.bin").write_bytes(os.urandom(3 << 20))
        backup(paths, host, full=True)
    started = int(time.time())  # the incremental's set and its change: a later second (duplicity
    while int(time.time()) == started:  # names sets, and compares mtimes, by whole seconds)
        time.sleep(0.05)
    (data_dir(paths, "web1") / "file2.txt").write_text("changed after the full\n")
    backup(paths, "web1")


def test_a_push_copies_each_sealed_file_under_prefix_host_verified(
    paths: ServerPaths, swift: Swift
) -> None:
    records = json.loads(ok(dupctl(paths, "offsite", "push", "--json")))
    copied = {record["host"]: record["copied"] for record in records}
    assert copied == {"web1": len(local(paths, "web1")), "web10": len(local(paths, "web10"))}
    for host in ("web1", "web10"):
        there = objects(swift, host)
        assert sorted(there) == sorted(local(paths, host))  # duplicity's names, nothing else
        for name, head in there.items():
            file = local(paths, host)[name]
            assert int(head["content-length"]) == file.stat().st_size
            assert head["x-object-meta-sha256"] == sha256(file)
            assert head["etag"] == hashlib.md5(file.read_bytes()).hexdigest()  # noqa: S324
    assert sorted(objects(swift, "_escrow")) == ["README.txt", "escrow.tar.gpg"]


def test_a_second_push_copies_nothing(paths: ServerPaths) -> None:
    records = json.loads(ok(dupctl(paths, "offsite", "push", "--json")))
    done = [(r["host"], r["copied"], r["replaced"]) for r in records]
    assert done == [("web1", 0, []), ("web10", 0, [])]
    assert all(r["skipped"] > 0 for r in records)
    status = json.loads(ok(dupctl(paths, "offsite", "status", "--json")))
    web1 = next(entry for entry in status if entry["host"] == "web1")
    assert (web1["target"], web1["sets_copied"], web1["sets_pending"]) == ("swift", 2, 0)
    assert web1["objects_by_class"] == {"STANDARD": len(local(paths, "web1"))}


def test_an_object_changed_offsite_is_caught_and_copied_again(
    paths: ServerPaths, swift: Swift
) -> None:
    [manifest] = [n for n in local(paths, "web1") if n.startswith("duplicity-inc.")
                  and n.endswith(".manifest.gpg")]  # fmt: skip
    file = local(paths, "web1")[manifest]
    key = f"dupstack/web1/{manifest}"
    # same size, our metadata kept: only the content differs
    swift.client().put_object(CONTAINER, key, b"x" * file.stat().st_size,
                              headers={"X-Object-Meta-Sha256": sha256(file)})  # fmt: skip
    done = ok(dupctl(paths, "offsite", "push", "web1"))
    assert "web1 -> swift: 1 copied" in done
    assert "1 changed or missing offsite, copied again" in done
    assert swift.client().get_object(CONTAINER, key)[1] == file.read_bytes()


def test_stock_duplicity_restores_from_the_swift_copy(paths: ServerPaths, swift: Swift) -> None:
    """With only the container, swiftclient's v1 variables and the host's passphrase."""
    restored = paths.root / "stock-restore"
    wanted = data_dir(paths, "web1") / "file2.txt"
    env = {**ENV, "PASSPHRASE": read_host_passphrase(paths, "web1"),
           "SWIFT_USERNAME": USER, "SWIFT_PASSWORD": KEY, "SWIFT_AUTHURL": swift.auth_url,
           # its size checks go through SwiftService, which reads these
           "ST_AUTH": swift.auth_url, "ST_USER": USER, "ST_KEY": KEY}  # fmt: skip
    done = subprocess.run(
        ["duplicity", "restore", "--archive-dir", str(paths.root / "stock-cache"),
         "--path-to-restore", str(wanted.relative_to("/")),
         f"swift://{CONTAINER}/dupstack/web1", str(restored)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert restored.read_text() == "changed after the full\n"


def test_dupctl_lists_and_restores_from_the_swift_copy(paths: ServerPaths) -> None:
    data = data_dir(paths, "web1")
    listing = ok(dupctl(paths, "list", "web1", "--from", "swift"))
    assert f"{data}/random.bin" in listing
    assert "web10" not in listing  # prefix isolation: web1's folder only
    to = paths.root / "restored"
    done = ok(dupctl(paths, "restore", "web1", "--from", "swift", "--to", str(to)))
    assert "restored everything of web1" in done
    for file in data.iterdir():
        assert (to / file.relative_to("/")).read_bytes() == file.read_bytes()
    full = sorted(n for n in local(paths, "web1") if n.startswith("duplicity-full."))[0]
    time_of_full = full.split(".")[1]
    to = paths.root / "restored-full"
    ok(dupctl(paths, "restore", "web1", "--from", "swift", "--path", f"{data}/file2.txt",
              "--time", time_of_full, "--to", str(to)))  # fmt: skip
    assert (to / data.relative_to("/") / "file2.txt").read_text() == "web1 file 2\n" * 100


def test_each_host_has_its_own_folder(paths: ServerPaths, swift: Swift) -> None:
    _, listing = swift.client().get_container(CONTAINER, full_listing=True)
    folders = {item["name"].rsplit("/", 1)[0] for item in listing}
    assert folders == {"dupstack/_escrow", "dupstack/web1", "dupstack/web10"}
    listing = ok(dupctl(paths, "list", "web10", "--from", "swift"))
    assert "tenants/web10/random.bin" in listing and "tenants/web1/" not in listing


def test_a_push_killed_at_any_point_leaves_nothing_half_copied(
    paths: ServerPaths, swift: Swift
) -> None:
    for index in range(4):
        (data_dir(paths, "web1") / f"big{index}.bin").write_bytes(os.urandom(1 << 20))
    backup(paths, "web1")
    write_inventory(paths, swift, bandwidth_limit="1M")
    ledger = paths.state_dir / "offsite" / "swift" / "web1.json"
    known = len(json.loads(ledger.read_text())["objects"])
    push = subprocess.Popen([str(BIN / "dupctl"), "--root", str(paths.root), "offsite", "push",
                             "web1"], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(json.loads(ledger.read_text())["objects"]) < known + 1:
        assert push.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(push.pid, signal.SIGKILL)  # mid-push: some volumes copied, some under way
    push.wait()
    there = objects(swift, "web1")
    files = local(paths, "web1")
    assert set(there) < set(files)  # not all there yet
    for name, head in there.items():  # whatever is there is whole and exactly the file
        assert int(head["content-length"]) == files[name].stat().st_size
        assert head["x-object-meta-sha256"] == sha256(files[name])
    for manifest in (name for name in files if name.endswith(".manifest.gpg")):
        if manifest in there:  # a set's manifest is there only with all its volumes
            stem = manifest.removesuffix(".manifest.gpg")
            assert all(n in there for n in files if n.startswith(f"{stem}.vol")), stem
    # the segments of a large object whose manifest never came (a push killed in one)
    stale = f"dupstack/web1/duplicity-full.x.vol9.difftar.gpg/{'0' * 64}/2/00000000"
    swift.client().put_container(f"{CONTAINER}_segments")
    swift.client().put_object(f"{CONTAINER}_segments", stale, b"xx")
    write_inventory(paths, swift)
    [record] = json.loads(ok(dupctl(paths, "offsite", "push", "web1", "--json")))
    assert record["copied"] > 0 and record["aborted"] == 1
    _, segments = swift.client().get_container(f"{CONTAINER}_segments")
    assert segments == []
    assert sorted(objects(swift, "web1")) == sorted(files)


def test_a_file_above_the_part_size_goes_as_a_static_large_object(
    paths: ServerPaths, swift: Swift
) -> None:
    """Segments of the part size, the manifest last; stock duplicity reads it whole."""
    store = open_store(paths, load_inventory(paths).target("swift"))
    files = local(paths, "web10")
    for name, file in files.items():
        store.upload("web10-large", name, file, sha256=sha256(file), storage_class="STANDARD",
                     part_size=256 << 10, progress=lambda count: None)  # fmt: skip
    big = max(files.values(), key=lambda file: file.stat().st_size)
    head = store.head("web10-large", big.name)
    assert (head.size, head.sha256) == (big.stat().st_size, sha256(big))
    assert store.listing("web10-large")[big.name].etag == head.etag  # what the push compares
    key = f"dupstack/web10-large/{big.name}"
    assert swift.client().get_object(CONTAINER, key)[1] == big.read_bytes()
    _, segments = swift.client().get_container(f"{CONTAINER}_segments",
                                               prefix=f"{key}/{sha256(big)}/")  # fmt: skip
    assert len(segments) == -(-big.stat().st_size // (256 << 10))
    assert store.abort_uploads("web10-large") == 0  # every segment is used
    restored = paths.root / "large-restore"
    env = {**ENV, "PASSPHRASE": read_host_passphrase(paths, "web10"), **store.duplicity_env()}
    done = subprocess.run(
        ["duplicity", "restore", "--archive-dir", str(paths.root / "large-cache"),
         f"swift://{CONTAINER}/dupstack/web10-large", str(restored)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    original = data_dir(paths, "web10") / "random.bin"
    assert (restored / original.relative_to("/")).read_bytes() == original.read_bytes()
    store.delete("web10-large", sorted(files))
    assert store.listing("web10-large") == {}
    _, segments = swift.client().get_container(f"{CONTAINER}_segments",
                                               prefix="dupstack/web10-large/")  # fmt: skip
    assert segments == []  # deleted with their manifest


def test_offsite_prune_removes_old_chains_swift_has_no_minimum_duration(
    paths: ServerPaths, swift: Swift
) -> None:
    before = set(objects(swift, "web10"))
    backup(paths, "web10", full=True)
    ok(dupctl(paths, "offsite", "push", "web10"))
    done = json.loads(ok(dupctl(paths, "offsite", "prune", "web10", "--json")))
    old, newest = done
    assert (old["removed"], old["early_objects"], newest["why"]) == (True, 0, "the newest chain")
    after = set(objects(swift, "web10"))
    assert not after & before and after
    assert before <= set(local(paths, "web10"))  # the volume keeps its own
    [record] = json.loads(ok(dupctl(paths, "offsite", "push", "web10", "--json")))
    assert record["copied"] == 0  # not copied back
    assert set(objects(swift, "web10")) == after


def test_bad_credentials_and_settings_are_one_clear_line(paths: ServerPaths, swift: Swift) -> None:
    credentials = paths.under(CREDENTIALS)
    good = credentials.read_text()
    wrong = "a-wrong-secret-value"
    credentials.write_text(f"auth_version = 1\nuser = {USER}\nkey = {wrong}\n")
    done = dupctl(paths, "offsite", "push", "web1")
    assert done.returncode == 17, done.stderr
    assert "401 Unauthorized: the credentials were refused" in done.stderr
    assert wrong not in done.stdout + done.stderr and "Traceback" not in done.stderr
    done = dupctl(paths, "list", "web1", "--from", "swift")
    assert done.returncode == 17 and "401 Unauthorized" in done.stderr, done.stderr
    assert len(done.stderr.splitlines()) == 2  # error and hint
    credentials.write_text("auth_version = 3\nuser = a\nkey = b\n")
    done = dupctl(paths, "offsite", "push", "web1")
    assert "auth_version must be 1" in done.stderr, done.stderr
    # Keystone v3: an application credential against an identity service that is not there
    credentials.write_text(f"application_credential_id = abc\napplication_credential_secret = "
                           f"{wrong}\n")  # fmt: skip
    write_inventory(paths, swift, auth_url="http://127.0.0.1:9/v3")
    done = dupctl(paths, "offsite", "push", "web1")
    assert done.returncode == 17 and "Keystone: ConnectFailure" in done.stderr, done.stderr
    assert wrong not in done.stdout + done.stderr
    credentials.write_text(good)
    write_inventory(paths, swift, container="no-such-container")
    done = dupctl(paths, "list", "web1", "--from", "swift")
    assert done.returncode != 0 and "holds no copy of web1" in done.stderr, done.stderr
    assert "swift://no-such-container/dupstack/web1" in done.stderr
    write_inventory(paths, swift, container="another", storage_policy="no-such-policy")
    done = dupctl(paths, "offsite", "push", "web1")
    assert done.returncode == 17, done.stderr
    assert "400 Bad Request: Invalid X-Storage-Policy 'no-such-policy'" in done.stderr
    write_inventory(paths, swift, container="another", storage_policy="Policy-0")
    ok(dupctl(paths, "offsite", "push", "web1"))  # made, with that policy
    assert swift.client().head_container("another")["x-storage-policy"] == "Policy-0"
    write_inventory(paths, swift)
