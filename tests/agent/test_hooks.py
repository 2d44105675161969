"""Hook points of a host's run, with real command hooks on a real tenant host: before (a dump
the backup then holds; a failure stops the run), after_success, after_failure, always, each
outcome in the run's record. One fleet: `bs` and web1; the tests run in order."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from fleet import Fleet, Host
from fleet.backup import backup_server, dupctl, set_host_options
from tests.agent.backup_fleet import DATA, status, tenant

pytestmark = pytest.mark.root
DUMP = f"{DATA}/dump.sql"
MARKS = "/root/marks"  # outside the backed-up paths


def mark(phase: str) -> list[str]:
    """A hook command that notes its phase and the run's result on the host."""
    return ["sh", "-c", f'echo "{phase} $DUPSTACK_HOST ${{DUPSTACK_RESULT:-}}" >> {MARKS}']


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        backup_server(fleet)
        tenant(fleet, "web1")
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture
def web1(fleet: Fleet) -> Iterator[Host]:
    host = fleet.hosts["web1"]
    host.path(MARKS).unlink(missing_ok=True)
    yield host


def marks(host: Host) -> list[str]:
    path = host.path(MARKS)
    return path.read_text().splitlines() if path.exists() else []


def sets(bs: Host) -> int:
    return status(bs, "web1")["sets"]


def test_a_before_hook_dumps_what_the_backup_then_holds(bs: Host, web1: Host) -> None:
    dump = ["sh", "-c", f"echo 'CREATE TABLE t;' > {DUMP}"]
    hooks = {"before": [dump, mark("before")], "after_success": [mark("after_success")],
             "after_failure": [mark("after_failure")], "always": [mark("always")]}  # fmt: skip
    set_host_options(bs, "web1", hooks=hooks)
    done = dupctl(bs, "backup", "web1", "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    assert marks(web1) == ["before web1 ", "after_success web1 ok", "always web1 ok"]
    assert [(h["phase"], h["result"]) for h in run["hooks"] if h["hook"] == "commands"] == [
        ("before", "ok"), ("before", "ok"), ("after_success", "ok"), ("always", "ok"),
    ]  # fmt: skip
    assert run["hooks"][0]["step"] == f"sh -c 'echo '\"'\"'CREATE TABLE t;'\"'\"' > {DUMP}'"
    assert status(bs, "web1")["last_run"]["hooks"] == run["hooks"]
    listing = dupctl(bs, "list", "web1").stdout
    assert DUMP in listing  # the dump made just before is in the set


def test_a_failing_before_hook_fails_the_run_with_its_own_message(bs: Host, web1: Host) -> None:
    before = sets(bs)
    failing = ["sh", "-c", "echo 'pg_dump: connection refused' >&2; exit 3"]
    hooks = {"before": [failing], "after_failure": [mark("after_failure")],
             "always": [mark("always")]}  # fmt: skip
    set_host_options(bs, "web1", hooks=hooks)
    done = dupctl(bs, "backup", "web1")
    assert done.returncode == 13
    assert "web1: before hook commands failed:" in done.stderr
    assert "pg_dump: connection refused" in done.stderr
    assert "nothing was backed up" in done.stderr
    assert sets(bs) == before
    assert marks(web1) == ["after_failure web1 failed", "always web1 failed"]
    run = status(bs, "web1")["last_run"]
    assert run["result"] == "failed" and run["error"].startswith("web1: before hook commands")
    assert [(h["phase"], h["result"]) for h in run["hooks"] if h["hook"] == "commands"] == [
        ("before", "failed"), ("after_failure", "ok"), ("always", "ok"),
    ]  # fmt: skip


def test_a_failing_after_hook_never_hides_a_good_backup(bs: Host, web1: Host) -> None:
    before = sets(bs)
    set_host_options(bs, "web1", hooks={"after_success": [["false"]], "always": [mark("always")]})
    done = dupctl(bs, "backup", "web1")
    assert done.returncode == 0, done.stderr
    assert "web1: warning: after_success hook commands failed:" in done.stdout
    assert sets(bs) == before + 1
    run = status(bs, "web1")["last_run"]
    assert (run["result"], run["error"]) == ("ok", None)
    assert [(h["phase"], h["result"]) for h in run["hooks"] if h["hook"] == "commands"] == [
        ("after_success", "failed"), ("always", "ok"),
    ]  # fmt: skip
    assert marks(web1) == ["always web1 ok"]


def test_without_a_session_host_hooks_have_nothing_to_run(bs: Host, web1: Host) -> None:
    set_host_options(bs, "web1", hooks={"after_failure": [mark("after_failure")]})
    web1.stop()
    try:
        done = dupctl(bs, "backup", "web1")
    finally:
        web1.start_sshd()
    assert done.returncode == 9 or done.returncode == 8, done.stderr
    assert status(bs, "web1")["last_run"]["hooks"] == []
    assert marks(web1) == []
