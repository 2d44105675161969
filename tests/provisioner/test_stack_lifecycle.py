"""stack-start, stack-get-url, stack-status, stack-delete against real Keystone and Heat.

The commands run as the user runs them (console scripts, password auth, real HTTP) against
localcloud, whose Heat maps the Nova/Neutron/Cinder types to stand-ins. Nothing of ours is
patched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud import LocalCloud, start_local_cloud

pytestmark = pytest.mark.openstack

BIN = Path(sys.executable).parent
PASSCODE = "stack-lifecycle-passcode-1234"
LAUNCH = ["--keypair", "demo-key", "--flavor", "m1.small", "--image", "debian-12",
          "--ssh-cidr", "198.51.100.0/24"]  # fmt: skip


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    running = start_local_cloud(tmp_path_factory.mktemp("cloud"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def passcode_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "passcode"
    path.write_text(PASSCODE + "\n")
    path.chmod(0o600)
    return path


def cli(cloud: LocalCloud, command: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run one of our console scripts with the cloud's credentials, no terminal."""
    return subprocess.run(
        [str(BIN / command), *args],
        env={"PATH": "/usr/bin:/bin", **cloud.client_env()},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start(cloud: LocalCloud, name: str, passcode_file: Path, *extra: str):
    return cli(
        cloud, "stack-start", name, *LAUNCH, "--passcode-file", str(passcode_file),
        "-e", str(cloud.environment_file), *extra,
    )  # fmt: skip


def status(cloud: LocalCloud, name: str) -> dict:
    result = cli(cloud, "stack-status", name, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_start_creates_the_stack_and_says_how_to_reach_it(cloud, passcode_file) -> None:
    result = start(cloud, "life-start", passcode_file)

    assert result.returncode == 0, result.stderr + cloud.log_tail()
    outputs = status(cloud, "life-start")["outputs"]
    assert "Backup server life-start is ready." in result.stdout
    assert f"floating IP  {outputs['floating_ip']}" in result.stdout
    assert f"ssh          ssh debian@{outputs['floating_ip']}" in result.stdout
    assert outputs["volume_id"] in result.stdout
    # pre-flight: this cloud's catalog has only identity and orchestration
    assert "skipped  keypair 'demo-key' (the cloud's catalog has no compute service)" in (
        result.stderr
    )
    # Heat's events were streamed as progress
    assert "volume_attachment        CREATE_COMPLETE" in result.stderr
    assert PASSCODE not in result.stdout + result.stderr


def test_get_url_prints_the_floating_ip_or_the_ssh_command(cloud, passcode_file) -> None:
    assert start(cloud, "life-url", passcode_file).returncode == 0
    outputs = status(cloud, "life-url")["outputs"]

    plain = cli(cloud, "stack-get-url", "life-url")
    ssh = cli(cloud, "stack-get-url", "life-url", "--ssh")

    assert (plain.returncode, plain.stdout) == (0, f"{outputs['floating_ip']}\n")
    assert (ssh.returncode, ssh.stdout) == (0, f"ssh debian@{outputs['floating_ip']}\n")


def test_start_on_an_existing_stack_reports_it_and_changes_nothing(cloud, passcode_file) -> None:
    assert start(cloud, "life-again", passcode_file).returncode == 0
    before = status(cloud, "life-again")

    again = start(cloud, "life-again", passcode_file)

    assert again.returncode == 0, again.stderr
    assert "stack life-again exists: CREATE_COMPLETE" in again.stderr
    after = status(cloud, "life-again")
    assert (after["id"], after["outputs"]) == (before["id"], before["outputs"])


def test_generated_passcode_is_shown_once(cloud) -> None:
    result = cli(cloud, "stack-start", "life-generated", *LAUNCH, "-e", str(cloud.environment_file))

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    heading = lines.index("Generated passcode (shown once, store it in your password manager):")
    passcode = lines[heading + 1].strip()
    assert len(passcode) == 32
    assert (result.stdout + result.stderr).count(passcode) == 1


def test_heat_rejecting_a_parameter_is_one_clear_error(cloud, passcode_file) -> None:
    result = cli(
        cloud, "stack-start", "life-badkey", "--keypair", "no-such-key", "--flavor", "m1.small",
        "--image", "debian-12", "--ssh-cidr", "198.51.100.0/24",
        "--passcode-file", str(passcode_file), "-e", str(cloud.environment_file),
    )  # fmt: skip

    assert result.returncode == 1
    assert "error: creating stack life-badkey:" in result.stderr
    assert "no-such-key" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli(cloud, "stack-get-url", "life-badkey").returncode == 3


def test_failed_stack_names_the_failing_resource(cloud, passcode_file) -> None:
    """A restore on a volume that is still attached fails in the attachment, as in Cinder."""
    assert start(cloud, "life-owner", passcode_file).returncode == 0
    volume = status(cloud, "life-owner")["outputs"]["volume_id"]

    result = start(cloud, "life-clash", passcode_file, "--restore-volume", volume)

    assert result.returncode == 4, result.stderr
    assert "error: stack life-clash CREATE_FAILED: resource volume_attachment failed:" in (
        result.stderr
    )
    assert "hint: fix the cause, then `stack-delete life-clash` and start again" in result.stderr
    again = start(cloud, "life-clash", passcode_file, "--restore-volume", volume)
    assert again.returncode == 4
    assert "stack life-clash exists: CREATE_FAILED" in again.stderr


def test_delete_keeps_the_volume_and_a_restore_stack_reuses_it(cloud, passcode_file) -> None:
    assert start(cloud, "life-delete", passcode_file).returncode == 0
    volume = status(cloud, "life-delete")["outputs"]["volume_id"]

    deleted = cli(cloud, "stack-delete", "life-delete")

    assert deleted.returncode == 0, deleted.stderr
    assert f"backup volume {volume} kept" in deleted.stdout
    assert volume in cloud.fake_resources("volumes")
    gone = cli(cloud, "stack-get-url", "life-delete")
    assert gone.returncode == 3
    assert "no stack named 'life-delete'" in gone.stderr

    restored = start(cloud, "life-restored", passcode_file, "--restore-volume", volume)

    assert restored.returncode == 0, restored.stderr
    assert "from dupstack.restore.heat.yaml" in restored.stderr
    assert status(cloud, "life-restored")["outputs"]["volume_id"] == volume


def test_delete_volume_is_refused_when_it_cannot_be_done(cloud, passcode_file) -> None:
    """This cloud has no block-storage API: refuse before deleting anything."""
    assert start(cloud, "life-keep", passcode_file).returncode == 0

    result = cli(cloud, "stack-delete", "life-keep", "--delete-volume", "--yes")

    assert result.returncode == 1
    assert "no block-storage service" in result.stderr
    assert "nothing was deleted" in result.stderr
    assert status(cloud, "life-keep")["status"] == "CREATE_COMPLETE"


def test_status_table_and_json_agree(cloud, passcode_file) -> None:
    assert start(cloud, "life-status", passcode_file).returncode == 0

    table = cli(cloud, "stack-status", "life-status")
    document = status(cloud, "life-status")

    assert table.returncode == 0
    assert f"stack life-status ({document['id']}): CREATE_COMPLETE" in table.stdout
    names = {res["name"] for res in document["resources"]}
    assert {"volume", "volume_attachment", "router", "floating_ip", "server"} <= names
    assert all(res["status"] == "CREATE_COMPLETE" for res in document["resources"])


def test_volume_type_is_passed_to_the_volume(cloud, passcode_file) -> None:
    result = start(cloud, "life-typed", passcode_file, "--volume-type", "standard")

    assert result.returncode == 0, result.stderr
    document = status(cloud, "life-typed")
    volume = cloud.fake_resources("volumes")[document["outputs"]["volume_id"]]
    assert volume["volume_type"] == "standard"
    created = {res["name"] for res in document["resources"]}
    assert "typed_volume" in created and "volume" not in created
