"""Each host's passphrase: the design's formula, its shell recipe, and `dupctl passphrase`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from agent import cli
from agent.config.load import save_host
from agent.errors import KeyMismatch
from agent.host_passphrase import host_passphrase, read_host_passphrase
from agent.paths import ServerPaths

SECRET = b"Zq3v9-example-stack-secret_from-token_urlsafe\n"  # as `dupctl init` stores it


def shell_recipe(secret_file: Path, host: str) -> str:
    """The design's recipe by hand, with standard tools."""
    script = (
        f"{{ echo 'dupstack host passphrase v1'; cat {secret_file}; echo {host}; }}"
        " | sha256sum | cut -d' ' -f1"
    )
    return subprocess.run(
        ["bash", "-c", script], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_the_passphrase_is_the_shell_recipes(tmp_path: Path) -> None:
    secret_file = tmp_path / "passphrase"
    secret_file.write_bytes(SECRET)
    for host in ("web1", "db-2"):
        derived = host_passphrase(SECRET, host)
        assert re.fullmatch(r"[0-9a-f]{64}", derived)
        assert derived == shell_recipe(secret_file, host)


def test_hosts_and_secrets_each_give_their_own_passphrase() -> None:
    assert host_passphrase(SECRET, "web1") != host_passphrase(SECRET, "web2")
    # The file's bytes as stored count, trailing newline included.
    assert host_passphrase(SECRET, "web1") != host_passphrase(SECRET.rstrip(b"\n"), "web1")


@pytest.mark.parametrize("secret", [b"", b"\n", b"  \n"])
def test_an_empty_secret_is_refused(secret: bytes) -> None:
    with pytest.raises(ValueError, match="empty"):
        host_passphrase(secret, "web1")


@pytest.mark.parametrize("host", ["", "web1\nweb2"])
def test_a_host_name_must_be_one_line(host: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        host_passphrase(SECRET, host)


@pytest.fixture
def server(tmp_path: Path) -> ServerPaths:
    """A server root with the stack secret and one host, web1, in the inventory."""
    paths = ServerPaths.from_root(tmp_path)
    save_host(paths, {"name": "web1", "address": "10.0.0.5"}, server={"address": "bs"})
    paths.passphrase_file.write_bytes(SECRET)
    return paths


def test_dupctl_passphrase_prints_it_alone_and_warns_on_stderr(
    server: ServerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--root", str(tmp_path), "passphrase", "web1"]) == 0
    out, err = capsys.readouterr()
    assert out == host_passphrase(SECRET, "web1") + "\n"
    assert out.strip() == shell_recipe(server.passphrase_file, "web1")
    assert err.startswith("dupctl: warning: this is web1's backup passphrase")


def test_dupctl_passphrase_refuses_a_host_not_in_the_inventory(
    server: ServerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--root", str(tmp_path), "passphrase", "web2"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"dupctl: error: no host 'web2' in {server.config_file} (hosts: web1)")


def test_dupctl_passphrase_needs_root(
    server: ServerPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert cli.main(["--root", str(tmp_path), "passphrase", "web1"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "dupctl: error: dupctl passphrase must run as root",
        "dupctl: hint: sudo dupctl passphrase web1",
    ]


def test_without_an_inventory_or_a_secret_it_says_what_to_do(
    server: ServerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.passphrase_file.unlink()
    with pytest.raises(KeyMismatch, match="missing or empty"):
        read_host_passphrase(server, "web1")
    assert cli.main(["--root", str(tmp_path), "passphrase", "web1"]) == 6
    assert "dupctl: hint: run `dupctl init`" in capsys.readouterr().err
    server.config_file.unlink()
    assert cli.main(["--root", str(tmp_path), "passphrase", "web1"]) == 2
    assert "dupctl host add" in capsys.readouterr().err
