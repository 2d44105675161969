"""The backup server's user-data: valid for cloud-init, within Nova's limit, self-contained."""

from __future__ import annotations

import base64
import importlib.metadata
import io
import re
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.paths import ServerPaths
from agent.stack_env import read_stack_env
from provisioner.userdata import (
    AGENT,
    NOVA_USER_DATA_LIMIT,
    PYPROJECT,
    TOKENS,
    agent_archive,
    render_user_data,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_CHECK = ROOT / "scripts" / "cloud-init-schema"
VOLUME_ID = "5b0e9c8e-7d51-4c1f-9a64-1f2d3c4b5a69"
NASTY_PASSCODES = [
    "plain-passcode-123",
    "  leading and trailing spaces  ",
    "# not a comment: {not: a map} [nor, a list] & * ! | > ' \" % @ `",
    "ünïcödé pässcode ✓",
    "--- ... ? - :",
]


def heat_str_replace(user_data: str, passcode: str, mode: str = "create") -> str:
    """What Heat hands to Nova: the tokens replaced by the stack's parameters."""
    values = dict(zip(TOKENS, (passcode, VOLUME_ID, "debian", mode), strict=True))
    for token, value in values.items():
        user_data = user_data.replace(token, value)
    return user_data


def cloud_config(text: str) -> dict[str, Any]:
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def write_file(config: dict[str, Any], path: Path | str) -> dict[str, Any]:
    (entry,) = [entry for entry in config["write_files"] if entry["path"] == str(path)]
    return entry


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    """Debian's cloud-init `schema` command; the script installs it on first use."""
    return subprocess.run([str(SCHEMA_CHECK), str(path)], capture_output=True, text=True)


def test_cloud_init_accepts_the_user_data_as_rendered_and_as_heat_sends_it(
    tmp_path: Path,
) -> None:
    rendered, sent = tmp_path / "rendered.yaml", tmp_path / "sent.yaml"
    rendered.write_text(render_user_data())
    sent.write_text(heat_str_replace(render_user_data(), NASTY_PASSCODES[2], mode="restore"))
    for path in (rendered, sent):
        done = schema_check(path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Valid cloud-config: {path}" in done.stdout


def test_the_schema_check_does_reject_a_broken_config(tmp_path: Path) -> None:
    """So that the check above cannot pass by not checking."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("#cloud-config\nruncmd: not-a-list\nwrite_files: [{path: 3}]\n")
    done = schema_check(broken)
    assert done.returncode != 0
    assert "runcmd: 'not-a-list' is not of type 'array'" in done.stdout + done.stderr


def test_the_user_data_stays_within_novas_limit_with_the_longest_passcode() -> None:
    sent = heat_str_replace(render_user_data(), "p" * 512)  # the template's maximum
    assert len(base64.b64encode(sent.encode())) <= NOVA_USER_DATA_LIMIT


def test_rendering_is_deterministic() -> None:
    assert render_user_data() == render_user_data()
    with tarfile.open(fileobj=io.BytesIO(agent_archive())) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.mode) for m in members} == {(0, 0, 0, 0o644)}


@pytest.mark.parametrize("passcode", NASTY_PASSCODES)
def test_cloud_init_writes_the_passcode_exactly_as_typed_and_root_only(passcode: str) -> None:
    config = cloud_config(heat_str_replace(render_user_data(), passcode))
    entry = write_file(config, ServerPaths.from_root().passcode_file)
    assert entry["content"] == passcode
    assert (entry["owner"], entry["permissions"]) == ("root:root", "0600")


def test_stack_env_tells_dupctl_the_volume_and_the_mode(tmp_path: Path) -> None:
    stack_env = ServerPaths.from_root(tmp_path).stack_env
    stack_env.parent.mkdir(parents=True)
    config = cloud_config(heat_str_replace(render_user_data(), "p" * 12, mode="restore"))
    stack_env.write_text(write_file(config, ServerPaths.from_root().stack_env)["content"])
    settings = read_stack_env(stack_env)
    assert (settings["DUPSTACK_VOLUME_ID"], settings["DUPSTACK_MODE"]) == (VOLUME_ID, "restore")

    unreplaced = cloud_config(render_user_data())  # tokens left: dupctl sees no settings
    stack_env.write_text(write_file(unreplaced, ServerPaths.from_root().stack_env)["content"])
    assert read_stack_env(stack_env) == {}


def _embedded_archive() -> bytes:
    entry = write_file(
        cloud_config(render_user_data()), "/opt/dupstack/dist/dupstack-agent.tar.bz2"
    )
    assert entry["encoding"] == "b64"
    return base64.b64decode(entry["content"])


def test_the_embedded_agent_is_the_whole_agent_package(tmp_path: Path) -> None:
    archive = _embedded_archive()
    assert archive == agent_archive()
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path, filter="data")
    sources = {
        f"dupstack-agent/agent/{path.relative_to(AGENT).as_posix()}"
        for path in AGENT.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert sources <= names

    # It runs on its own: no provisioner, no OpenStack library, nothing from this checkout.
    done = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); "
         "from agent.cli import main; sys.exit(main(['init', '--help']))"],
        cwd=tmp_path / "dupstack-agent", capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: dupctl init")


def test_the_embedded_pyproject_installs_dupctl_with_the_servers_dependencies() -> None:
    with tarfile.open(fileobj=io.BytesIO(_embedded_archive())) as tar:
        embedded = tomllib.loads(tar.extractfile("dupstack-agent/pyproject.toml").read().decode())
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project["optional-dependencies"]
    assert embedded["project"]["scripts"] == {"dupctl": "agent.cli:main"}
    assert embedded["project"]["dependencies"] == [
        *project["dependencies"],
        *extras["remote"],
        *extras["server"],
    ]
    assert not [dep for dep in embedded["project"]["dependencies"] if "openstack" in dep]


def test_the_server_gets_the_duplicity_the_tests_run() -> None:
    runcmd = cloud_config(render_user_data())["runcmd"]
    (pin,) = [arg for command in runcmd for arg in command if arg.startswith("duplicity==")]
    version = pin.removeprefix("duplicity==")
    assert int(version.split(".")[0]) >= 3
    assert importlib.metadata.version("duplicity") == version


def test_dupctl_init_runs_at_first_boot_and_at_every_later_boot() -> None:
    config = cloud_config(render_user_data())
    assert config["runcmd"][-1] == ["/opt/dupstack/bin/dupctl", "init"]
    hook = write_file(config, "/var/lib/cloud/scripts/per-boot/dupstack-init")
    assert hook["permissions"] == "0755"
    assert hook["content"].splitlines()[-1] == "exec /opt/dupstack/bin/dupctl init"
    wrapper = write_file(config, "/usr/local/sbin/dupctl")
    assert "exec /opt/dupstack/bin/dupctl" in wrapper["content"]


def test_the_packages_dupctl_needs_are_installed() -> None:
    packages = set(cloud_config(render_user_data())["packages"])
    assert {"gnupg", "python3-venv", "nftables", "cron", "e2fsprogs", "util-linux"} <= packages


def test_the_user_data_has_no_unknown_token() -> None:
    assert set(re.findall(r"__DUPSTACK_[A-Z_]+__", render_user_data())) == set(TOKENS)
