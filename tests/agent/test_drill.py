"""Restore drills, notifications, pings and metrics around real runs: a drill that passes,
one that skips files changed since, one whose file count is off, one that catches a corrupted
volume file; a failed run told by mail (a real SMTP server inside the backup server's
namespace) and pinged (a real HTTP receiver there); the metrics file read by
prometheus_client's parser. One fleet: `bs` and web1; the tests run in order."""

from __future__ import annotations

import fcntl
import json
import threading
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet import Fleet, Host
from fleet.backup import BACKUPS, backup_server, dupctl, ok, set_host_options
from fleet.receivers import Mailbox, Receiver
from tests.agent.backup_fleet import status, tenant, write_files

pytestmark = pytest.mark.root
URLS = "/etc/dupstack/notify.urls"
PING = "/etc/dupstack/ping/web1"
TOKEN = "ping-t0ken-77"
METRICS = "/var/lib/prometheus/node-exporter/dupstack.prom"


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
def mailbox(bs: Host) -> Iterator[Mailbox]:
    server = bs.call(Mailbox)  # listens inside bs
    bs.call(server.start)  # which checks it by connecting from there
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web(bs: Host) -> Iterator[Receiver]:
    server = bs.call(Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module", autouse=True)
def told(bs: Host, mailbox: Mailbox, web: Receiver) -> None:
    """Failures told by mail; web1 pinged at web's /ping/TOKEN."""
    for name, text in ((URLS, mailbox.url), (PING, f"http://{web.base}/ping/{TOKEN}")):
        file = bs.path(name)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text + "\n")
        file.chmod(0o600)
    inventory = bs.path("/etc/duplicity/dupstack.yaml")
    inventory.write_text(inventory.read_text() + f"notifications: {{urls_file: {URLS}}}\n")
    set_host_options(bs, "web1", ping_url_file=PING)


def pings(web: Receiver) -> list[str]:
    paths = [path for _method, path, _body in web.requests if "/ping/" in path]
    web.requests.clear()
    return [path.removeprefix(f"/ping/{TOKEN}") or "/" for path in paths]


def drill(bs: Host, *args: str) -> tuple[int, dict]:
    done = dupctl(bs, "drill", "web1", "--json", *args)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def metrics(bs: Host) -> dict[tuple[str, str], float]:
    text = bs.path(METRICS).read_text()
    return {
        (sample.name, sample.labels.get("host", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_good_run_pings_start_and_success_and_tells_nobody(
    bs: Host, web: Receiver, mailbox: Mailbox
) -> None:
    ok(dupctl(bs, "backup", "web1"))
    assert pings(web) == ["/start", "/"]
    assert mailbox.messages == []  # successes only with success: true
    values = metrics(bs)
    assert values[("dupstack_last_run_success", "web1")] == 1
    assert values[("dupstack_sets", "web1")] == 1


def test_a_drill_of_a_good_backup_passes(bs: Host) -> None:
    code, record = drill(bs, "--sample-percent", "50")
    assert code == 0, record
    assert record["result"] == "pass" and record["failures"] == []
    assert record["sampled"] == 10 and record["compared"] == 10 and record["changed"] == 0
    # the same files: the spool and the folders only it brings in are not counted
    assert record["files_on_host"] == record["files_in_set"], record
    assert record["set_time"] == status(bs, "web1")["last_backup"]
    assert status(bs, "web1")["last_drill"]["result"] == "pass"
    assert metrics(bs)[("dupstack_last_drill_success", "web1")] == 1
    assert not list(bs.path("/var/lib/dupstack/drill").iterdir())  # scratch removed


def test_files_changed_since_the_backup_are_not_compared(bs: Host, web1: Host) -> None:
    write_files(web1, 5, "v2")  # new content, new mtime
    code, record = drill(bs, "--sample-percent", "100")
    assert code == 0, record["failures"]
    assert (record["sampled"], record["changed"], record["compared"]) == (20, 5, 15)
    write_files(web1, 20, "v2")  # every file
    code, record = drill(bs, "--sample-percent", "100")
    assert code == 15  # a drill that compared nothing proved nothing
    assert (record["sampled"], record["changed"], record["compared"]) == (20, 20, 0)
    assert "nothing could be compared" in record["failures"][0]


def test_a_file_count_off_by_more_than_the_tolerance_fails_and_is_told(
    bs: Host, web1: Host, mailbox: Mailbox
) -> None:
    ok(dupctl(bs, "backup", "web1"))
    mailbox.messages.clear()  # the earlier failed drill's
    write_files(web1, 40, "new", start=100)  # not backed up yet: twice the files
    done = dupctl(bs, "drill", "web1")
    assert done.returncode == 15, done.stderr
    assert "on the host now" in done.stderr and "tolerance 10%" in done.stderr
    [mail] = mailbox.messages
    body = mail.get_body().get_content()
    assert "web1 drill failed" in mail["subject"]
    assert "on the host now" in body and "dupctl verify web1" in body
    mailbox.messages.clear()
    assert dupctl(bs, "drill", "web1", "--count-tolerance", "100").returncode == 0
    assert mailbox.messages == []  # a passed drill is told only with success: true
    ok(dupctl(bs, "backup", "web1"))


def test_a_failed_run_is_told_with_its_error_and_hint_and_pinged_fail(
    bs: Host, web: Receiver, mailbox: Mailbox
) -> None:
    pings(web)
    set_host_options(bs, "web1", hooks={"before": [["sh", "-c", "echo 'app busy' >&2; exit 4"]]})
    assert dupctl(bs, "backup", "web1").returncode == 13
    set_host_options(bs, "web1", hooks={})
    assert pings(web) == ["/start", "/fail"]
    [mail] = mailbox.messages
    body = mail.get_body().get_content()
    assert "web1 backup failed" in mail["subject"]
    assert "before hook commands failed" in body and "app busy" in body
    assert "hint: fix the command in hooks.before of web1" in body
    mailbox.messages.clear()
    assert metrics(bs)[("dupstack_last_run_success", "web1")] == 0
    log = bs.path(status(bs, "web1")["last_run"]["log"]).read_text()
    assert TOKEN not in log and str(mailbox.port) not in log  # no URL in the run's log


def test_a_drill_catches_a_corrupted_volume_file(bs: Host, mailbox: Mailbox) -> None:
    folder = bs.path(BACKUPS.format("web1"))
    [volume] = sorted(folder.glob("duplicity-full.*.vol1.difftar.gpg"))
    data = bytearray(volume.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    volume.write_bytes(bytes(data))
    code, record = drill(bs, "--sample-percent", "100")
    assert code == 15
    assert record["result"] == "fail"
    assert record["failures"][0].startswith("restore of the sample failed")
    [mail] = mailbox.messages
    assert "web1 drill failed" in mail["subject"]
    assert metrics(bs)[("dupstack_last_drill_success", "web1")] == 0


def test_no_drill_at_all_is_a_failed_drill_recorded_and_told(bs: Host, mailbox: Mailbox) -> None:
    mailbox.messages.clear()
    with bs.path("/var/lib/dupstack/locks/web1.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as a running backup holds it
        done = dupctl(bs, "drill", "web1")
    assert done.returncode == 12, done.stderr  # busy
    drilled = status(bs, "web1")["last_drill"]
    assert drilled["result"] == "fail" and drilled["failures"][0].startswith("no drill:")
    [mail] = mailbox.messages
    assert "web1 drill failed" in mail["subject"]
