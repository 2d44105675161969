"""Malformed command lines, by the dozen, against a server root with an inventory, a stack
secret and one host that has no backup yet: each is refused with one error line (and its
hint), never an internal error (exit 70), a traceback or a hang, and changes nothing there.

Only refusals are here: a case that went through would reach a host (`backup`) or the system
(`host add` makes accounts), which the fleet tests do; `host add`'s own corpus is in
test_host_add.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.agent.dupctl_server import DUPCTL

INVENTORY = """\
server: {address: 10.0.0.1}
hosts:
  web1: {address: 10.0.0.5}
offsite:
  targets:
    deep: {type: s3, bucket: dr-copies, storage_class: DEEP_ARCHIVE,
           credentials_file: /etc/dupstack/offsite/deep.ini}
"""
ODD = "/a\x01b"

CASES: list[list[str]] = [
    # backup
    ["backup"], ["backup", "--all", "web1"], ["backup", "nohost"], ["backup", "../etc"],
    ["backup", "web1", "--timeout", "-1"], ["backup", "web1", "--timeout", "nan"],
    ["backup", "web1", "--timeout", "inf"], ["backup", "web1", "--timeout", "0"],
    ["backup", "web1", "--timeout", "1e400"], ["backup", "web1", "--timeout", "x"],
    ["backup", "--all", "--jobs", "0"], ["backup", "--all", "--jobs", "-3"],
    ["backup", "--all", "--jobs", "100000"], ["backup", "--all", "--jobs", "2.5"],
    ["backup", "web1", "--retry-delay", "-1"], ["backup", "web1", "--retry-delay", "nan"],
    ["backup", "web1", "--bogus"], ["backup", "--missed", "web1"],
    # list, sets, status, verify, passphrase
    ["list"], ["list", "nohost"], ["list", "web1", "--time=--version"],
    ["list", "web1", "--time", "99999999999999"], ["list", "web1", "--time", ""],
    ["list", "web1", "--time", " 3D"], ["list", "web1", "--time", "2999-01-01"],
    ["list", "web1", "--time", "3D\n"], ["list", "web1", "--from", "nope"],
    ["list", "web1"],  # no backup yet
    ["sets", "nohost"], ["sets"], ["status", "nohost"], ["status", "web1", "--bogus"],
    ["verify", "nohost"], ["verify", "web1", "--time", "-1"], ["verify", "web1"],
    ["passphrase", "nohost"], ["passphrase"],
    # restore
    ["restore", "web1"], ["restore", "nohost", "--to", "/tmp/x"],
    ["restore", "web1", "--path", "relative", "--to", "/tmp/x"],
    ["restore", "web1", "--to-host"], ["restore", "web1", "--to-host", "--to", "relative"],
    ["restore", "web1", "--time=--help", "--to", "/tmp/x"],
    ["restore", "web1", "--time", "9999999999999999", "--to", "/tmp/x"],
    ["restore", "web1", "--into", "x"], ["restore", "web1", "--database", "x", "--path", "/a"],
    ["restore", "web1", "--database", "x", "--to", "/tmp/x"],
    ["restore", "web1", "--thaw", "bulk", "--to", "/tmp/x"],
    ["restore", "web1", "--no-wait", "--to", "/tmp/x"],
    ["restore", "web1", "--from", "deep", "--days", "0", "--to", "/tmp/x"],
    ["restore", "web1", "--from", "deep", "--days", "1000", "--to", "/tmp/x"],
    ["restore", "web1", "--from", "deep", "--thaw", "slow", "--to", "/tmp/x"],
    ["restore", "web1", "--from", "nope", "--to", "/tmp/x"],
    ["restore", "web1", "--from", "deep"],
    ["restore", "web1", "--path", ODD, "--to", "/tmp/x"],  # no backup yet either
    ["restore", "web1", "--to", "/tmp/x"],  # no backup yet
    # prune, drill
    ["prune", "nohost"], ["prune", "web1", "--bogus"], ["prune", "../x"],
    ["drill", "web1", "--sample-percent", "0"], ["drill", "web1", "--sample-percent", "101"],
    ["drill", "web1", "--max-files", "0"], ["drill", "web1", "--count-tolerance", "-1"],
    ["drill", "web1", "--count-tolerance", "nan"], ["drill"], ["drill", "nohost"],
    # host
    ["host"], ["host", "frob"], ["host", "remove"], ["host", "remove", "../x"],
    ["host", "remove", "-x"], ["host", "remove", "web1", "--purge"],
    ["host", "add", "web2"], ["host", "add", "web2", "--address", "10.0.0.6", "--port", "0"],
    ["host", "add", "web2", "--address", "10.0.0.6", "--port", "70000"],
    ["host", "add", "web2", "--address", "10.0.0.6", "--timeout", "-1"],
    ["host", "add", "web2", "--address", "\udcff"],
    ["host", "add", "web2", "--address", "10.0.0.6", "--path", "relative"],
    ["host", "add", "web2", "--address", "10.0.0.6", "--exclude", "/var/x"],
    ["host", "add", "web2", "--address", "10.0.0.6", "--host-key", "/dev/zero"],
    ["host", "add", "Bad_Name", "--address", "10.0.0.6"],
    # schedule, notify, metrics, upgrade
    ["schedule"], ["schedule", "show", "extra"], ["schedule", "apply", "--bogus"],
    ["notify"], ["notify", "test"], ["notify", "stale", "--bogus"], ["metrics", "--bogus"],
    ["upgrade"], ["upgrade", "--version", "1.0"], ["upgrade", "--version", "1.0", "--sha256", "x"],
    # offsite
    ["offsite"], ["offsite", "push", "nohost"], ["offsite", "push", "--target", "nope"],
    ["offsite", "status", "nohost"], ["offsite", "prune", "--target", "nope"],
    ["offsite", "plan", "--files", "0", "--file-size", "1KiB"],
    ["offsite", "plan", "--files", "10", "--file-size", "1Q"],
    ["offsite", "plan", "--files", "10", "--file-size", "1K"],
    ["offsite", "plan", "--files", "10", "--file-size", "6TiB"],
    ["offsite", "plan", "--files", "10"], ["offsite", "plan", "--volsize", "10"],
    ["offsite", "plan", "--files", "10", "--file-size", "1KiB", "--volsize", "0"],
    ["offsite", "plan", "--files", "10", "--file-size", "1KiB", "--compression", "0"],
    ["offsite", "plan", "--files", "10", "--file-size", "1KiB", "--storage-class", "COLD"],
    ["offsite", "plan", "--files", "10", "--file-size", "1KiB", "--prices", "/dev/zero"],
    ["offsite", "plan", "--files", "10", "--file-size", "1KiB", "--prices", "/nonexistent"],
    ["offsite", "plan", "web1", "--files", "10", "--file-size", "1KiB"],
    # init, and no command at all
    ["init"], ["init", "--mode", "sideways"], ["init", "--mode", "create", "--wait", "-1"],
    [], ["frobnicate"], ["--root"],
]  # fmt: skip


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A server root: the inventory, the stack secret, the offsite credentials (all 0600)."""
    top = tmp_path_factory.mktemp("root")
    for name, text in {
        "etc/duplicity/dupstack.yaml": INVENTORY,
        "etc/duplicity/passphrase": "x" * 40 + "\n",
        "etc/dupstack/offsite/deep.ini": "aws_access_key_id = a\naws_secret_access_key = b\n",
    }.items():
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text(text)
        (top / name).chmod(0o600)
    return top


def tree(top: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below `top`: (mode, size, mtime), what a refusal must leave as it was."""
    found = {}
    for folder, names, files in os.walk(top):
        for name in names + files:
            info = os.lstat(os.path.join(folder, name))
            found[os.path.join(folder, name)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


def test_the_corpus_is_large() -> None:
    assert len(CASES) >= 100


@pytest.mark.root
@pytest.mark.parametrize("argv", CASES, ids=lambda argv: " ".join(argv) or "(none)")
def test_a_malformed_command_line_is_one_clear_error_and_changes_nothing(
    root: Path, argv: list[str]
) -> None:
    before = tree(root)
    done = subprocess.run(
        [DUPCTL, "--root", str(root), *argv],
        capture_output=True, text=True, errors="surrogateescape", timeout=30,  # a hang fails
        stdin=subprocess.DEVNULL, env={**os.environ, "DUPSTACK_ROOT": str(root)},
    )  # fmt: skip
    assert done.returncode not in (0, 70), done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("dupctl"), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert tree(root) == before
