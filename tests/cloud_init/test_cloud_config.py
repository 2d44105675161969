"""The backup server's user-data: valid for cloud-init, small, self-contained but agent-free."""

from __future__ import annotations

import base64
import gzip
import importlib.metadata
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.paths import ServerPaths
from agent.stack_env import read_stack_env
from provisioner.userdata import INSTALLER, TOKENS, USER_DATA_BUDGET, render_user_data

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


AGENT_PINS = ("0.1.0", "ab" * 32, "https://pypi.org/simple", "", "")


def heat_str_replace(
    user_data: str, passcode: str, mode: str = "create", pins: tuple[str, ...] = AGENT_PINS
) -> str:
    """What Heat hands to Nova: the tokens replaced by the stack's parameters."""
    values = dict(zip(TOKENS, (passcode, VOLUME_ID, "debian", mode, *pins), strict=True))
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


def test_the_user_data_stays_small_with_every_parameter_at_its_longest() -> None:
    url = "https://" + "u" * 1016  # the templates' maximum URL length, 1024
    longest = ("9" * 64, "f" * 64, url, url, "e" * 64)
    sent = heat_str_replace(render_user_data(), "p" * 512, pins=longest)
    assert len(base64.b64encode(sent.encode())) <= USER_DATA_BUDGET


def test_rendering_is_deterministic() -> None:
    assert render_user_data() == render_user_data()


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


def test_the_installer_on_the_server_is_the_agents_own_byte_for_byte() -> None:
    entry = write_file(cloud_config(render_user_data()), "/usr/local/sbin/dupstack-install")
    assert entry["encoding"] == "gz+b64"  # cloud-init's own write_files encoding
    assert gzip.decompress(base64.b64decode(entry["content"])) == INSTALLER.read_bytes()
    assert (entry["owner"], entry["permissions"]) == ("root:root", "0755")


def test_no_agent_code_travels_in_the_user_data() -> None:
    config = cloud_config(render_user_data())
    encoded = [entry["path"] for entry in config["write_files"] if entry.get("encoding")]
    assert encoded == ["/usr/local/sbin/dupstack-install"]
    # The installer and a page of cloud-config: the agent's size never shows here.
    assert len(render_user_data()) < len(INSTALLER.read_text()) + 4096


def test_the_server_gets_the_duplicity_the_tests_run() -> None:
    lock = (ROOT / "agent" / "data" / "server-requirements.txt").read_text()
    (version,) = re.findall(r"(?m)^duplicity==(\S+)", lock)
    assert int(version.split(".")[0]) >= 3
    assert importlib.metadata.version("duplicity") == version


def test_install_env_carries_the_pins_heat_sends() -> None:
    pins = (
        "1.2.3",
        "c" * 64,
        "https://mirror.example/simple",
        "https://swift/w.tar?a=1&b=2",
        "d" * 64,
    )
    config = cloud_config(heat_str_replace(render_user_data(), "p" * 12, pins=pins))
    lines = write_file(config, "/etc/dupstack/install.env")["content"].splitlines()
    assert lines == [
        "DUPSTACK_VERSION=1.2.3",
        f"DUPSTACK_SHA256={'c' * 64}",
        "DUPSTACK_INDEX_URL=https://mirror.example/simple",
        "DUPSTACK_WHEELHOUSE_URL=https://swift/w.tar?a=1&b=2",
        f"DUPSTACK_WHEELHOUSE_SHA256={'d' * 64}",
    ]


def test_dupctl_init_runs_at_first_boot_and_at_every_later_boot() -> None:
    config = cloud_config(render_user_data())
    # Only after the installer worked: a failed or refused download never reaches the volume.
    assert config["runcmd"] == [
        [
            "sh",
            "-c",
            "/usr/local/sbin/dupstack-install && exec /opt/dupstack/current/bin/dupctl init",
        ]
    ]
    hook = write_file(config, "/var/lib/cloud/scripts/per-boot/dupstack-init")
    assert hook["permissions"] == "0755"
    assert hook["content"].splitlines()[-1] == "exec /opt/dupstack/current/bin/dupctl init"
    wrapper = write_file(config, "/usr/local/sbin/dupctl")
    assert "exec /opt/dupstack/current/bin/dupctl" in wrapper["content"]


def test_the_packages_dupctl_needs_are_installed() -> None:
    packages = set(cloud_config(render_user_data())["packages"])
    assert {"gnupg", "python3-venv", "nftables", "cron", "e2fsprogs", "util-linux"} <= packages


def test_the_user_data_has_no_unknown_token() -> None:
    assert set(re.findall(r"__DUPSTACK_[A-Z0-9_]+__", render_user_data())) == set(TOKENS)
