"""`dupctl sets HOST`: every set of every chain, read from the file names on the volume, with
a time that `--time` takes and that selects exactly that set.

The sets are made by the real duplicity into a host's folder under a temporary server root:
chain 1 a full (3 volumes) and two incrementals, chain 2 a full, then an incremental killed
while it wrote its volumes (as the host's account left it: not sealed). Each set adds one
file, etc/setN, and rewrites etc/state, so a listing or a restore tells which set it read.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.backup_sets import StoredFile, chains_of, iso_time
from agent.cli import main
from agent.config.load import load_inventory
from agent.duplicity.backup import backup_command
from agent.duplicity.common import Repository, Selection, environment
from agent.duplicity.list_files import list_files_command
from agent.duplicity.restore import restore_command
from agent.duplicity.status import collection_status_command, parse_collection_status
from agent.host_passphrase import host_passphrase
from agent.paths import ServerPaths
from agent.repository import backups_dir, server_repository
from agent.runlog import stamp
from agent.times import check_time

pytestmark = pytest.mark.root

INVENTORY = """\
server: {address: 10.0.0.1}
hosts:
  web1: {address: 10.0.0.5}
  web2: {address: 10.0.0.6}
"""
SECRET = b"the stack secret\n"
HOST_UID = 54321  # the host's SFTP account, which owns what a run wrote until it is sealed


@dataclass
class Server:
    """A server root whose web1 has real duplicity sets; web2 has none."""

    top: Path
    paths: ServerPaths
    repository: Repository  # web1's sets, as the server reads them (file://)
    passphrase: str

    @property
    def folder(self) -> Path:
        return backups_dir(self.paths, load_inventory(self.paths).host("web1"))

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(self.top / "home"),
            "GNUPGHOME": str(self.top / "gnupg"),
            **environment(self.passphrase),
        }

    def duplicity(self, argv: tuple[str, ...]) -> str:
        done = subprocess.run(argv, env=self.env(), capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stderr}"
        return done.stdout


def dupctl(server: Server, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`dupctl --root TOP ARGS...` in-process: (exit code, stdout, stderr)."""
    try:
        code = main(["--root", str(server.top), *args])
    except SystemExit as exit:  # argparse's errors and --help
        code = exit.code if isinstance(exit.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def _next_second() -> None:
    """duplicity names a set by the second it starts: two sets need two seconds."""
    now = int(time.time())
    while int(time.time()) == now:
        time.sleep(0.05)


def _kill_once_written(server: Server, argv: tuple[str, ...]) -> None:
    """Run `argv` and kill it (its whole session) once its second volume is on the volume."""
    process = subprocess.Popen(argv, env=server.env(), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(server.folder.glob("duplicity-inc.*.vol2.difftar.gpg")):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run wrote no second volume"
            time.sleep(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    top = Path(tempfile.mkdtemp(prefix="dupstack-sets-", dir="/tmp"))  # short: gpg's socket
    (top / "gnupg").mkdir(mode=0o700)
    paths = ServerPaths.from_root(top)
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(INVENTORY)
    paths.passphrase_file.write_bytes(SECRET)
    host = load_inventory(paths).host("web1")
    backups_dir(paths, host).mkdir(parents=True)
    # The sets are written with a cache of their own: dupctl's starts empty, as on a new server.
    here = server_repository(paths, host)
    writer = Repository(here.url, here.name, str(top / "writer-cache"))
    built = Server(top, paths, here, host_passphrase(SECRET, "web1"))
    source = top / "source"
    (source / "etc").mkdir(parents=True)
    selection = Selection(paths=(str(source / "etc"),), root=str(source))
    (source / "etc/blob").write_bytes(os.urandom(2_500_000))  # --volsize 1: three volumes
    for number, full in ((1, True), (2, False), (3, False), (4, True)):
        if number > 1:  # a new set's second, and a new mtime: duplicity compares whole seconds
            _next_second()
        (source / f"etc/set{number}").write_text(f"{number}\n")
        (source / "etc/state").write_text(f"state {number}\n")  # as long as the last state
        built.duplicity(backup_command(writer, selection, full=full, volsize=1 if full else None))
    (source / "etc/set5").write_text("5\n")
    (source / "etc/big").write_bytes(os.urandom(8_000_000))  # eight volumes: time to kill
    _next_second()
    before = set(os.listdir(built.folder))
    _kill_once_written(built, backup_command(writer, selection, volsize=1))
    for leftover in set(os.listdir(built.folder)) - before:
        os.chown(built.folder / leftover, HOST_UID, 0)  # the host's, as a killed run left them
    (built.folder / "notes.txt").write_text("not duplicity's\n")
    yield built
    for home in (top / "gnupg", paths.gnupg_home):
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def isolated(server: Server, monkeypatch: pytest.MonkeyPatch) -> Server:
    """The server, with dupctl's duplicity kept out of this machine's ~/.gnupg."""
    monkeypatch.setenv("HOME", str(server.top / "home"))
    monkeypatch.setenv("GNUPGHOME", str(server.top / "gnupg"))
    return server


def sets_json(server: Server, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, err = dupctl(server, capsys, "sets", "web1", "--json")
    assert code == 0, err
    return json.loads(out)


def complete_sets(found: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for chain in found["chains"] for s in chain["sets"] if s["complete"]]


def listed(server: Server, at: str) -> set[str]:
    """The etc/setN files that duplicity list-current-files shows as of `at`."""
    out = server.duplicity(list_files_command(server.repository, time=at))
    printed = re.compile(r"^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} (etc/set.*)$", re.MULTILINE)
    return {f"/{path}" for path in printed.findall(out)}


def test_every_set_of_every_chain_with_the_times_duplicity_gives_them(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    found = sets_json(server, capsys)
    assert set(found) == {"host", "chains", "orphaned"}
    assert found["host"] == "web1" and found["orphaned"] == []
    first, second = found["chains"]
    assert [(s["type"], s["complete"], s["sealed"]) for s in first["sets"]] == [
        ("full", True, True), ("incremental", True, True), ("incremental", True, True),
    ]  # fmt: skip
    assert [(s["type"], s["complete"], s["sealed"]) for s in second["sets"]] == [
        ("full", True, True), ("incremental", False, False),
    ]  # fmt: skip
    for chain in found["chains"]:
        assert all(set(s) == {"type", "time", "volumes", "bytes", "complete", "sealed"}
                   for s in chain["sets"])  # fmt: skip
    # duplicity's own view: collection-status lists the same sets with the same times
    # (asctime, UTC) and volumes, the killed one among them, which it counts as incomplete.
    status = parse_collection_status(server.duplicity(collection_status_command(server.repository)))
    assert [[(s.kind, stamp(s.time), s.volumes) for s in c.sets] for c in status.chains] == [
        [(s["type"], s["time"], s["volumes"]) for s in chain["sets"]] for chain in found["chains"]
    ]
    assert status.incomplete_sets == 1
    assert [s["volumes"] for s in first["sets"]] == [3, 1, 1]
    assert (first["start"], first["end"]) == (first["sets"][0]["time"], first["sets"][2]["time"])
    # The killed run: the volumes it wrote, no manifest; its chain still ends at the full.
    killed = second["sets"][1]
    assert killed["volumes"] >= 2 and killed["time"] > second["sets"][0]["time"]
    assert (second["start"], second["end"]) == (second["sets"][0]["time"],) * 2
    # Every byte of duplicity's files is in one set; notes.txt is in none.
    stored = sum(f.stat().st_size for f in server.folder.glob("duplicity-*"))
    assert sum(s["bytes"] for c in found["chains"] for s in c["sets"]) == stored


def test_the_printed_time_selects_that_set_and_a_second_before_it_the_one_before(
    isolated: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    server = isolated
    for number, backup_set in enumerate(complete_sets(sets_json(server, capsys)), 1):
        printed, expected = backup_set["time"], {f"/etc/set{n}" for n in range(1, number + 1)}
        assert check_time(printed) == printed  # what dupctl list and restore hand duplicity
        assert listed(server, printed) == expected
        code, out, err = dupctl(server, capsys, "list", "web1", "--time", printed)
        assert code == 0, err
        assert {word for word in out.split() if word.startswith("/etc/set")} == expected
        target = server.top / f"restored-{number}"
        server.duplicity(
            restore_command(server.repository, str(target), path="/etc/state", time=printed)
        )
        assert target.read_text() == f"state {number}\n"
        if number > 1:  # a second earlier (where a run's start is): the set before
            moment = datetime.fromisoformat(printed.replace("Z", "+00:00"))
            assert listed(server, stamp(moment - timedelta(seconds=1))) == expected - {
                f"/etc/set{number}"
            }


def test_a_table_by_default_with_the_incomplete_set_flagged(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    found = sets_json(server, capsys)
    code, out, err = dupctl(server, capsys, "sets", "web1")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["chain", "type", "time", "volumes", "size", "state"]
    rows = [line.split(maxsplit=6) for line in lines[1:]]
    times = [s["time"] for chain in found["chains"] for s in chain["sets"]]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        ("1", "full", times[0]), ("1", "incremental", times[1]), ("1", "incremental", times[2]),
        ("2", "full", times[3]), ("2", "incremental", times[4]),
    ]  # fmt: skip
    assert [row[3] for row in rows][:4] == ["3", "1", "1", "3"]
    assert [row[-1].strip() for row in rows] == ["complete"] * 4 + [
        "incomplete (no manifest), not sealed"
    ]


def test_status_shows_the_last_complete_sets_time(
    isolated: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    found = sets_json(isolated, capsys)
    code, out, err = dupctl(isolated, capsys, "status", "web1", "--json")
    assert code == 0, err
    (web1,) = json.loads(out)
    # Not the killed run's set, which collection-status (last_backup) counts as the newest.
    assert web1["last_set"] == found["chains"][1]["sets"][0]["time"]
    assert web1["last_backup"] == found["chains"][1]["sets"][1]["time"]
    code, out, err = dupctl(isolated, capsys, "status", "web1")
    assert code == 0, err
    header, row = out.splitlines()
    assert "last set" in header and web1["last_set"] in row.split()


def test_a_host_without_sets_an_unknown_host_and_help(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = dupctl(server, capsys, "sets", "web2", "--json")
    assert code == 0 and json.loads(out) == {"host": "web2", "chains": [], "orphaned": []}
    code, out, _ = dupctl(server, capsys, "sets", "web2")
    assert code == 0 and out == "web2: no sets on the volume yet\n"
    code, _, err = dupctl(server, capsys, "sets", "db9")
    assert code == 2 and "no host 'db9'" in err
    assert err == dupctl(server, capsys, "status", "db9")[2]  # as every command says it
    code, out, _ = dupctl(server, capsys, "sets", "--help")
    assert code == 0 and "examples:\n  dupctl sets web1" in out


def test_sets_that_extend_nothing_and_files_that_are_not_duplicitys() -> None:
    full, inc, later = "20261202T201716Z", "20261203T010000Z", "20261204T010000Z"
    files = {
        f"duplicity-full.{full}.vol1.difftar.gpg": StoredFile(100, True),
        f"duplicity-full.{full}.manifest.gpg": StoredFile(10, True),
        f"duplicity-full-signatures.{full}.sigtar.gpg": StoredFile(5, True),
        # extends a set that is not there (its start is no set's time): in no chain
        f"duplicity-inc.{inc}.to.{later}.vol1.difftar.gpg": StoredFile(7, False),
        f"duplicity-inc.{inc}.to.{later}.manifest.gpg": StoredFile(1, False),
        "duplicity-full.20261202T201716Z.vol1.difftar.gpg.part": StoredFile(3, True),
        "notes.txt": StoredFile(1, True),
    }
    assert chains_of(files) == {
        "chains": [
            {
                "start": "2026-12-02T20:17:16Z",
                "end": "2026-12-02T20:17:16Z",
                "sets": [
                    {
                        "type": "full",
                        "time": "2026-12-02T20:17:16Z",
                        "volumes": 1,
                        "bytes": 115,
                        "complete": True,
                        "sealed": True,
                    },
                ],
            }
        ],
        "orphaned": [
            {
                "type": "incremental",
                "time": "2026-12-04T01:00:00Z",
                "volumes": 1,
                "bytes": 8,
                "complete": True,
                "sealed": False,
            },
        ],
    }
    assert iso_time(full) == "2026-12-02T20:17:16Z"
