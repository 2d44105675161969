"""Notifications: apprise messages about runs and stale hosts, healthchecks-style pings, and
`dupctl notify test|stale`. Real deliveries only: an SMTP server and an HTTP receiver on
127.0.0.1. A URL's token never shows in a log, a message, an error or the output."""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent import notify
from agent.actions.notify import check_stale
from agent.commands import notify_stale, notify_test
from agent.config.load import Inventory, load_inventory
from agent.errors import ConfigError, DupstackError
from agent.hooks import HookOutcome, HostRun
from agent.hooks import notify as notify_hook
from agent.host import HostContext
from agent.paths import ServerPaths
from agent.runlog import RunRecord, open_log, stamp, write_status
from fleet.receivers import Mailbox, Receiver

pytestmark = pytest.mark.root  # the URL files must be root's
TOKEN = "tok-5ecr3t-4242"
URLS = "/etc/dupstack/notify.urls"  # as the inventory names them: under the test's root
PING = "/etc/dupstack/ping/web1"
FAILURE = DupstackError(
    "web1: cannot connect to 10.0.0.5:22: connection refused",
    hint="check that sshd runs on web1",
)


@pytest.fixture
def paths(tmp_path: Path) -> ServerPaths:
    return ServerPaths.from_root(tmp_path)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    server = Mailbox()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def web() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed() -> Iterator[str]:
    """host:port of a socket bound and never listening: every connection is refused."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{unused.getsockname()[1]}"


def secret_file(paths: ServerPaths, name: str, *lines: str, mode: int = 0o600) -> Path:
    """The file the inventory calls `name` (under the test's root), with `lines`."""
    file = paths.under(name)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("".join(f"{line}\n" for line in lines))
    file.chmod(mode)
    return file


def inventory(
    paths: ServerPaths, notifications: dict[str, Any] | None = None, **web1: Any
) -> Inventory:
    """A real inventory file with web1 and its settings `web1`, read back."""
    hosts = {"web1": {"address": "10.0.0.5", **web1}}
    document: dict[str, Any] = {"server": {"address": "10.0.0.10"}, "hosts": hosts}
    if notifications is not None:
        document["notifications"] = notifications
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(yaml.safe_dump(document))
    return load_inventory(paths)


def backup_run(
    paths: ServerPaths,
    inventory: Inventory,
    error: DupstackError | None = None,
    outcomes: tuple[HookOutcome, ...] = (),
    action: str | None = None,
) -> HostRun:
    """web1's run as the backup dispatches it (no session to the host): before, then the
    run's error (if any) and the outcomes of earlier hooks, then always."""
    context = HostContext(paths, inventory, inventory.host("web1"), passphrase="x")
    with open_log(paths, "web1", datetime.now(UTC)) as log:
        run = HostRun(context, log)
        run.dispatch("before", hooks=(notify_hook,))
        run.error, run.action = error, action
        run.outcomes.extend(outcomes)
        run.dispatch("always", hooks=(notify_hook,))
    return run


def steps(run: HostRun) -> list[tuple[str, str, str]]:
    return [(o.phase, o.step, o.result) for o in run.outcomes if o.hook == "notify"]


def plain(message: email.message.EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_a_failed_run_is_mailed_with_its_host_error_and_hint(
    paths: ServerPaths, mailbox: Mailbox
) -> None:
    secret_file(paths, URLS, "# the ops team", "", mailbox.url)
    run = backup_run(paths, inventory(paths, {"urls_file": URLS}), error=FAILURE)
    assert steps(run) == [("always", "tell failed", "ok")]
    [mail] = mailbox.messages
    assert mail["Subject"] == f"dupstack on {socket.gethostname()}: web1 backup failed"
    body = plain(mail)
    assert "error: web1: cannot connect to 10.0.0.5:22: connection refused" in body
    assert "hint: check that sshd runs on web1" in body
    assert f"log: {run.log.name}" in body


def test_successes_are_told_only_with_success_true(paths: ServerPaths, web: Receiver) -> None:
    secret_file(paths, URLS, f"json://{web.base}/hook/{TOKEN}")
    quiet = backup_run(paths, inventory(paths, {"urls_file": URLS}), action="incremental")
    assert steps(quiet) == [] and web.requests == []
    told = backup_run(
        paths, inventory(paths, {"urls_file": URLS, "success": True}), action="incremental"
    )
    assert steps(told) == [("always", "tell ok", "ok")]
    [sent] = web.messages()
    assert sent["title"].endswith(": web1 backup ok")
    assert "set: incremental" in sent["message"] and "duration: " in sent["message"]
    assert sent["type"] == "success"


def test_a_good_backup_whose_hook_failed_is_told_as_a_warning(
    paths: ServerPaths, web: Receiver
) -> None:
    secret_file(paths, URLS, f"json://{web.base}/hook/{TOKEN}")
    failed = HookOutcome("commands", "pg_dumpall", "after_success", "failed", "exit 3", 0.1)
    run = backup_run(paths, inventory(paths, {"urls_file": URLS}), outcomes=(failed,))
    assert steps(run) == [("always", "tell warning", "ok")]
    [sent] = web.messages()
    assert sent["title"].endswith(": web1 backup warning")
    assert "after_success hook commands failed: exit 3" in sent["message"]


def test_without_notifications_or_a_ping_file_there_is_nothing_to_do(paths: ServerPaths) -> None:
    run = backup_run(paths, inventory(paths), error=FAILURE)
    assert steps(run) == []


def test_a_url_that_fails_is_named_by_its_line_and_never_shown(
    paths: ServerPaths,
    web: Receiver,
    closed: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # what apprise and urllib3 say at debug must not leak
    urls = secret_file(paths, URLS, "# down", f"json://{closed}/hook/{TOKEN}",
                       f"json://{web.base}/hook/{TOKEN}")  # fmt: skip
    settings = inventory(paths, {"urls_file": URLS})
    run = backup_run(paths, settings, error=FAILURE)
    [outcome] = [o for o in run.outcomes if o.hook == "notify"]
    assert outcome.result == "failed"
    assert outcome.error == f"notification not delivered by line(s) 2 of {urls}"
    assert len(web.messages()) == 1  # the other URL still took it
    assert f"notification not delivered by line 2 of {urls}: json:" in caplog.text
    assert notify_test.run(argparse.Namespace(), paths) == 1  # one of two: not a pass
    output = capsys.readouterr()
    assert f"delivered to 1 of 2 URL(s) of {urls}" in output.out
    seen = [caplog.text, output.out, output.err, Path(run.log.name).read_text(), str(outcome)]
    assert all(TOKEN not in text and closed not in text for text in seen)


def test_notify_test_fails_naming_the_file_when_no_url_takes_it(
    paths: ServerPaths, closed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    urls = secret_file(paths, URLS, f"json://{closed}/hook/{TOKEN}", "not a url")
    inventory(paths, {"urls_file": URLS})
    with pytest.raises(DupstackError) as raised:
        notify_test.run(argparse.Namespace(), paths)
    assert raised.value.message == f"no URL of {urls} took the test message (2 tried)"
    assert TOKEN not in str(raised.value) + raised.value.hint + capsys.readouterr().err


def test_a_urls_file_others_could_read_or_change_is_refused_by_name(paths: ServerPaths) -> None:
    urls = secret_file(paths, URLS, f"json://127.0.0.1:9/hook/{TOKEN}", mode=0o644)
    settings = inventory(paths, {"urls_file": URLS})
    event = notify.Event(action="test", result="ok")
    where = f"{urls} (notifications.urls_file)"
    refusals = []
    for prepare in (
        lambda: None,  # as written: 0644
        lambda: (urls.chmod(0o600), os.chown(urls, 1000, 1000)),
        lambda: (os.chown(urls, 0, 0), urls.write_text("# nothing yet\n\n")),
        lambda: urls.unlink(),
    ):
        prepare()
        with pytest.raises(ConfigError) as raised:
            notify.tell(paths, settings, event)
        assert TOKEN not in raised.value.message + raised.value.hint
        refusals.append((raised.value.message, raised.value.hint))
    assert refusals == [
        (f"{where} may be read by group or others (mode 0644): its URLs hold tokens",
         f"chmod 600 {urls}"),
        (f"{where} is owned by uid 1000, not root: its URLs hold tokens",
         f"chown root:root {urls} && chmod 600 {urls}"),
        (f"{where} lists no URL", f"write one URL per line into {urls} (# comments)"),
        (f"{where} does not exist",
         f"write one URL per line into {urls}, then chmod 600 {urls}"),
    ]  # fmt: skip


def test_a_run_pings_start_then_fail_with_its_error(paths: ServerPaths, web: Receiver) -> None:
    secret_file(paths, PING, f"http://{web.base}/ping/{TOKEN}/")  # trailing /
    run = backup_run(paths, inventory(paths, ping_url_file=PING), error=FAILURE)
    assert steps(run) == [("before", "ping start", "ok"), ("always", "ping fail", "ok")]
    assert [(method, path) for method, path, _body in web.requests] == [
        ("POST", f"/ping/{TOKEN}/start"), ("POST", f"/ping/{TOKEN}/fail"),
    ]  # fmt: skip
    body = web.requests[1][2].decode()
    assert body.startswith(f"{FAILURE.message}\n{FAILURE.hint}\nlog: ")
    backup_run(paths, inventory(paths, ping_url_file=PING), action="full")
    assert web.requests[-1][:2] == ("POST", f"/ping/{TOKEN}")
    assert web.requests[-1][2] == b"full ok"


def test_a_ping_that_fails_never_stops_the_run_nor_shows_its_url(
    paths: ServerPaths, closed: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ping = secret_file(paths, PING, f"https://{closed}/{TOKEN}")
    run = backup_run(paths, inventory(paths, ping_url_file=PING), error=FAILURE)
    assert steps(run) == [("before", "ping start", "ok"), ("always", "ping fail", "failed")]
    failed = run.outcomes[-1].error
    assert failed == f"web1: fail ping failed: Connection refused (the URL in {ping})"
    log = Path(run.log.name).read_text()
    assert f"warning: web1: start ping failed: Connection refused (the URL in {ping})" in log
    assert all(TOKEN not in text and closed not in text for text in (log, caplog.text))


def test_ping_targets_follow_healthchecks() -> None:
    base = "https://hc-ping.com/5a7e"
    assert [notify.ping_target(f"{base}/", kind) for kind in ("start", "success", "fail")] == [
        f"{base}/start", base, f"{base}/fail",
    ]  # fmt: skip
    assert notify.ping_target(f"{base}?create=1", "fail") == f"{base}/fail?create=1"


def ok_run(paths: ServerPaths, host: str, end: datetime, result: str = "ok") -> None:
    write_status(paths, RunRecord(
        host=host, start=stamp(end - timedelta(minutes=5)), end=stamp(end), duration=300.0,
        action="incremental", result=result, error=None if result == "ok" else "web1: refused",
        log=f"/var/log/dupstack/{host}/run.log",
    ))  # fmt: skip


def test_a_stale_host_is_told_once_then_again_after_a_new_success_goes_stale(
    paths: ServerPaths, web: Receiver
) -> None:
    secret_file(paths, URLS, f"json://{web.base}/hook/{TOKEN}")
    inventory(paths, {"urls_file": URLS, "stale_after": "36h"})
    first = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    ok_run(paths, "web1", first)
    hour = timedelta(hours=1)

    def told(now: datetime) -> list[tuple[str, str]]:
        return [(host["host"], host["told"]) for host in check_stale(paths, now)["hosts"]]

    assert told(first + 30 * hour) == []
    ok_run(paths, "web1", first + 35 * hour, result="failed")  # a failure: still stale
    assert told(first + 37 * hour) == [("web1", "now")]
    assert told(first + 38 * hour) == [("web1", "before")]
    [sent] = web.messages()
    assert sent["title"].endswith(": web1 stale") and sent["type"] == "warning"
    assert "error: no successful backup for 37 h (last: 2026-11-20T03:00:00Z)" in sent["message"]
    assert "last run: 2026-11-21T13:55:00Z, failed: web1: refused" in sent["message"]
    ok_run(paths, "web1", first + 40 * hour)  # re-arms it
    assert told(first + 41 * hour) == []
    assert told(first + 77 * hour) == [("web1", "now")]
    assert len(web.messages()) == 2


def test_a_host_never_backed_up_is_stale_from_when_it_was_first_seen(
    paths: ServerPaths, web: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file(paths, URLS, f"json://{web.base}/hook/{TOKEN}")
    inventory(paths, {"urls_file": URLS})  # stale_after: 36h by default
    seen = datetime.now(UTC) - timedelta(hours=40)
    assert check_stale(paths, seen)["hosts"] == []  # first seen: not stale yet
    assert notify_stale.run(argparse.Namespace(json=True), paths) == 0
    [host] = json.loads(capsys.readouterr().out)["hosts"]
    assert (host["host"], host["last_success"], host["told"]) == ("web1", None, "now")
    assert "no successful backup yet, known for 40 h" in web.messages()[0]["message"]
    assert notify_stale.run(argparse.Namespace(json=False), paths) == 0
    assert capsys.readouterr().out == "web1: stale, last success never (told before)\n"
    state = paths.state_dir / "notify" / "stale.json"
    assert state.stat().st_mode & 0o777 == 0o600 and len(web.messages()) == 1
