"""The dupctl command line: help everywhere, one-line errors, documented exit codes."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

import agent.errors
from agent import cli
from agent.actions import init as init_action
from tests.agent.dupctl_server import DUPCTL, Server

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "dupctl.md"


def _commands(parser: argparse.ArgumentParser | None = None) -> list[list[str]]:
    """Every command and subcommand (host add, schedule show...), as argv."""
    parser = parser or cli.build_parser()
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in sorted(action.choices.items()):
                found.append([name])
                found.extend([name, *rest] for rest in _commands(sub))
    return found


@pytest.mark.parametrize("command", [[], *_commands()], ids=" ".join)
def test_every_command_has_help(command: list[str]) -> None:
    done = subprocess.run([DUPCTL, *command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: dupctl")
    assert "--debug" in done.stdout
    if command:
        assert "examples:\n  dupctl " in done.stdout  # every command shows how it is used


@pytest.mark.parametrize(
    "argv",
    [
        ["backup", "web1", "--full", "--jobs", "2"],
        ["--debug", "--root", "/srv/x", "restore", "web1", "--path", "/etc/hosts", "--to", "/r"],
        ["--root=/srv/x", "host", "add", "web1", "--address", "10.0.0.5"],
        ["offsite", "plan", "--files", "10", "--file-size", "1KiB"],
        ["status", "--json"],
    ],
    ids=" ".join,
)
def test_the_command_alone_parses_as_the_whole_parser(argv: list[str]) -> None:
    alone = cli.build_parser(argv)
    (commands,) = (a for a in alone._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == {next(arg for arg in argv[1:] + argv if arg in cli.COMMANDS)}
    assert alone.parse_args(argv) == cli.build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [[], ["--help"], ["--version"], ["bogus"], ["--ro", "/x", "backup"], ["--root", "backup"],
     ["--", "backup"]],
    ids=" ".join,
)  # fmt: skip
def test_what_names_no_known_command_gets_the_whole_parser(argv: list[str]) -> None:
    whole = cli.build_parser(argv)
    (commands,) = (a for a in whole._actions if isinstance(a, argparse._SubParsersAction))
    assert set(commands.choices) == set(cli.COMMANDS)


def test_a_command_imports_no_other_command() -> None:
    code = (
        "import sys; from agent import cli; cli.build_parser(['backup', 'web1'])\n"
        "import agent.actions.backup\n"
        "print(*sorted(m for m in sys.modules if m.startswith(('agent.commands.', 'urllib.r'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # urllib.request (and ssl) only for a ping, not for every backup
    assert done.stdout.split() == ["agent.commands.backup", "agent.commands.common"]


def test_a_usage_error_is_one_line_and_a_hint(tmp_path: Path) -> None:
    done = subprocess.run([DUPCTL, "--root", str(tmp_path), "init"], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "dupctl: error: no mode given",
        f"dupctl: hint: pass --mode create|restore (or set DUPSTACK_MODE in "
        f"{tmp_path}/etc/dupstack/stack.env)",
    ]


def test_init_needs_root(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["--root", str(tmp_path), "init", "--mode", "create"]) == 2
    assert capsys.readouterr().err.startswith("dupctl: error: dupctl init must run as root\n")


def test_a_bug_exits_70_and_points_at_debug(tmp_path: Path, monkeypatch, capsys) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(init_action, "run_init", broken)  # what the command runs
    assert cli.main(["--root", str(tmp_path), "init", "--mode", "create"]) == 70
    assert capsys.readouterr().err.splitlines() == [
        "dupctl: internal error: RuntimeError('boom')",
        "dupctl: hint: rerun with --debug for the traceback",
    ]


def test_tracebacks_only_with_debug(server: Server) -> None:
    missing = ("--mode", "create", "--device", "/dev/dupstack-missing", "--wait", "0")
    quiet = server.init(*missing)
    loud = server.init(*missing, "--debug")
    assert quiet.returncode == loud.returncode == 3
    assert "Traceback" not in quiet.stderr
    assert len(quiet.stderr.splitlines()) == 2
    assert "Traceback" in loud.stderr


@pytest.mark.parametrize("doc", [DOCS, ROOT / "README.md"], ids=["docs", "readme"])
def test_the_documented_exit_codes_are_the_real_ones(doc: Path) -> None:
    documented = {
        name: int(code)
        for code, name in re.findall(r"^\| (\d+) \|[^|]*\| `(\w+)` \|$", doc.read_text(), re.M)
    }
    errors = {
        name: error.exit_code
        for name, error in vars(agent.errors).items()
        if isinstance(error, type) and issubclass(error, agent.errors.DupstackError)
    }
    # Every exit code a dupctl error can have is documented, under its base class.
    assert set(errors.values()) == set(documented.values())
    for name, code in documented.items():
        assert errors[name] == code
    assert f"| {cli.EXIT_INTERNAL} |" in doc.read_text()
