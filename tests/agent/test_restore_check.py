"""The check after a restore from offsite: every file the set lists below the path must be
in the restored tree as the type it was; what is not is named (no silent loss)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from agent.actions.restore_offsite import not_restored
from agent.duplicity.list_files import Entry

WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def entry(path: bytes, kind: str) -> Entry:
    return Entry(path, WHEN, kind)


def test_a_complete_tree_misses_nothing_and_paths_outside_are_not_asked(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    (landing / "sub").mkdir(parents=True)
    (landing / "a.txt").write_text("a")
    os.symlink("a.txt", landing / "link")
    odd = os.fsencode(landing) + b"/caf\xe9"
    open(odd, "w").close()
    listing = [entry(b"/srv", "dir"), entry(b"/srv/data", "dir"), entry(b"/srv/data/a.txt", "reg"),
               entry(b"/srv/data/sub", "dir"), entry(b"/srv/data/link", "sym"),
               entry(b"/srv/data/caf\xe9", ""), entry(b"/srv/database", "reg"),
               entry(b"/etc/hosts", "reg")]  # fmt: skip
    assert not_restored(listing, "/srv/data", landing) == []


def test_a_file_that_did_not_come_back_or_came_back_as_another_type_is_named(
    tmp_path: Path,
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "was-a-link").write_text("not a link")
    listing = [entry(b"/", "dir"), entry(b"/gone.txt", "reg"), entry(b"/was-a-link", "sym")]
    assert not_restored(listing, None, landing) == [b"/gone.txt", b"/was-a-link"]


def test_a_single_file_restore_is_the_landing_itself(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.write_text("x")
    assert not_restored([entry(b"/etc/motd", "reg")], "/etc/motd", landing) == []
    assert not_restored([entry(b"/etc/motd", "dir")], "/etc/motd", landing) == [b"/etc/motd"]
