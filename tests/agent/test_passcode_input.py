"""The passcode comes from a root-only file or stdin, is checked, and is shredded after use."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from agent.errors import PasscodeError
from agent.passcode import consume_passcode_file, read_passcode


def _passcode_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "passcode"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_passcode_is_the_file_without_its_line_end(tmp_path: Path) -> None:
    path = _passcode_file(tmp_path, "  spaces # and: 'quotes'  \n")
    assert read_passcode(path) == "  spaces # and: 'quotes'  "


def test_stdin_is_read_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("typed at the prompt\n"))
    assert read_passcode("-") == "typed at the prompt"


def test_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = _passcode_file(tmp_path, "correct horse battery", mode=0o644)
    with pytest.raises(PasscodeError, match="readable by others") as error:
        read_passcode(path)
    assert error.value.hint == f"chown root:root {path} && chmod 600 {path}"


def test_a_missing_file_says_how_to_give_the_passcode(tmp_path: Path) -> None:
    with pytest.raises(PasscodeError, match="does not exist") as error:
        read_passcode(tmp_path / "nothing")
    assert "--passcode-file -" in error.value.hint


def test_a_short_passcode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PasscodeError, match="at least 12 characters"):
        read_passcode(_passcode_file(tmp_path, "short"))


def test_the_file_is_overwritten_then_removed(tmp_path: Path) -> None:
    path = _passcode_file(tmp_path, "correct horse battery")
    assert consume_passcode_file(path)
    assert not path.exists()
    assert not consume_passcode_file(path)
    assert not consume_passcode_file("-")
