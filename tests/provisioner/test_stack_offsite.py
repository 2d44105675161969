"""stack-offsite at the HTTP layer: the Swift container and the application credential it asks
Swift and Keystone for, call by call, and what it installs on the backup server.

The cloud is requests-mocked (conftest.FakeCloud) with Swift in its catalog; the backup
server is a folder behind a stand-in `ssh` on PATH (fake_ssh.py), which logs every call's
argv and stdin, so each test can say where the secret went and where it never did.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.provisioner.heat_api import (
    ROUTER_ID,
    SECURITY_GROUP_ID,
    STACK,
    STACK_ID,
    expect_stack,
    run_cli,
)

CONTAINER = "dupstack-offsite"
CREDENTIAL = "dupstack-backup-swift"
CREDENTIAL_ID = "4b1d9c7e2a6f4e0b8c3d5f7a9e1b2c4d"
NEW_CREDENTIAL_ID = "7e3a5c9b1d2f4a6e8b0c2d4f6a8e0b1c"
SECRET = "hJ3kQ9vX2mN7pR4tW8yZ1aB5cD6eF0gH-keystone-made-secret"
SERVER_FILE = "/etc/dupstack/offsite/swift.ini"
LOGIN = "debian@203.0.113.10"
OFFSITE = ["stack-offsite", STACK, "--swift", CONTAINER, "--os-cloud", "testcloud"]
SWIFT_SERVICES = (
    "identity",
    "compute",
    "image",
    "network",
    "block-storage",
    "orchestration",
    "object-store",
)


# --- the cloud --------------------------------------------------------------------------


@pytest.fixture
def cloud(make_cloud):
    """The usual cloud, with Swift."""
    return make_cloud(SWIFT_SERVICES)


def stack_body(cloud) -> dict[str, Any]:
    return cloud.load(
        "heat_stack.json",
        STACK_ID=STACK_ID,
        ROUTER_ID=ROUTER_ID,
        SECURITY_GROUP_ID=SECURITY_GROUP_ID,
    )


def account(cloud) -> str:
    return f"/v1/AUTH_{cloud.project_id}"


def rules(cloud, container: str = CONTAINER) -> list[dict[str, str]]:
    """The access rules of a credential for `container`: its objects and itself, 5 methods."""
    return [
        {"service": "object-store", "method": method, "path": path}
        for path in (f"{account(cloud)}/{container}", f"{account(cloud)}/{container}/**")
        for method in ("GET", "HEAD", "PUT", "POST", "DELETE")
    ]


def credential(cloud, credential_id: str, container: str = CONTAINER) -> dict[str, Any]:
    """Keystone's answer to the create call: the secret is in it, this once."""
    body = cloud.load(
        "keystone_application_credential.json",
        CREDENTIAL_ID=credential_id,
        CREDENTIAL_NAME=CREDENTIAL,
        DESCRIPTION=f"dupstack stack backup, offsite target swift: Swift container {container}",
        SECRET=SECRET,
    )
    body["application_credential"]["access_rules"] = [
        {**rule, "id": f"{number:032x}"} for number, rule in enumerate(rules(cloud, container))
    ]
    return body


def listing(cloud, *credentials: dict[str, Any]) -> dict[str, Any]:
    """GET /v3/users/ID/application_credentials: never a secret. The user's other
    credentials are in it too: only ours, by name, counts."""
    other = credential(cloud, "c0ffee00c0ffee00c0ffee00c0ffee00")["application_credential"]
    items = [{**other, "name": "ci-runner", "unrestricted": True, "access_rules": []}]
    del items[0]["secret"]
    for body in credentials:
        item = copy.deepcopy(body["application_credential"])
        del item["secret"]
        items.append(item)
    address = cloud.url("identity", "users", cloud.user_id, "application_credentials")
    return {"application_credentials": items, "links": {"self": address, "next": None}}


def credentials_url(cloud, *parts: str, **query: str) -> str:
    return cloud.url("identity", "users", cloud.user_id, "application_credentials", *parts, **query)


def expect_container(cloud, exists: bool) -> None:
    head = cloud.url("object-store", CONTAINER)
    if exists:
        headers = cloud.load("swift_container_head.json")
        cloud.register({"method": "HEAD", "uri": head, "status_code": 204, "headers": headers})
        return
    cloud.register(
        {"method": "HEAD", "uri": head, "status_code": 404, "text": ""},
        {"method": "PUT", "uri": head, "status_code": 201, "text": ""},
    )


def expect_lookup(cloud, *existing: dict[str, Any]) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": credentials_url(cloud),
            "json": listing(cloud, *existing),
        }
    )


def expect_create(cloud, credential_id: str = CREDENTIAL_ID) -> None:
    cloud.register(
        {
            "method": "POST",
            "uri": credentials_url(cloud),
            "status_code": 201,
            "json": credential(cloud, credential_id),
            "body": {
                "application_credential": {
                    "name": CREDENTIAL,
                    "description": "dupstack stack backup, offsite target swift: "
                    f"Swift container {CONTAINER} only (stack-offsite)",
                    "unrestricted": False,
                    "access_rules": rules(cloud),
                }
            },
        }
    )


def expect_delete(cloud, credential_id: str = CREDENTIAL_ID) -> None:
    cloud.register(
        {"method": "DELETE", "uri": credentials_url(cloud, credential_id), "status_code": 204}
    )


def keystone_error(status: int, title: str, message: str) -> dict[str, Any]:
    return {
        "status_code": status,
        "json": {"error": {"code": status, "title": title, "message": message}},
    }


# --- the backup server ------------------------------------------------------------------


class FakeServer:
    """The backup server behind the stand-in ssh: a folder, and the log of ssh calls."""

    def __init__(self, root: Path, log: Path) -> None:
        self.root = root
        self.log = log

    def file(self, path: str = SERVER_FILE) -> Path:
        return self.root / path.lstrip("/")

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def remote_commands(self) -> list[str]:
        """What each ssh call asked the server to run (its last argument)."""
        return [call["argv"][-1] for call in self.calls()]

    def install(self, credential_id: str) -> None:
        """A copy of a credential's secret, as an earlier run left it."""
        self.file().parent.mkdir(parents=True, exist_ok=True)
        self.file().write_text(
            f"application_credential_id = {credential_id}\n"
            "application_credential_secret = an-older-secret\n"
        )
        self.file().chmod(0o600)


@pytest.fixture
def backup_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    """`ssh` on PATH is fake_ssh.py, its server a folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    script = Path(__file__).with_name("fake_ssh.py")
    ssh.write_text(f'#!/bin/sh\nexec {sys.executable} {script} "$@"\n')
    ssh.chmod(0o755)
    server = FakeServer(tmp_path / "server", tmp_path / "ssh.log")
    server.root.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SSH_ROOT", str(server.root))
    monkeypatch.setenv("FAKE_SSH_LOG", str(server.log))
    return server


def assert_secret_only_on_stdin(server: FakeServer, out: str, err: str) -> None:
    assert SECRET not in out + err
    for call in server.calls():
        assert not any(SECRET in arg for arg in call["argv"])


# --- create -----------------------------------------------------------------------------


def test_first_run_creates_container_and_credential_and_installs_it(
    cloud, backup_server, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    expect_container(cloud, exists=False)
    expect_create(cloud)

    code, out, err = run_cli(OFFSITE, capsys)

    assert code == 0, err
    cloud.assert_calls()
    # On the server: root's file (chown by the server's sudo), mode 0600, the agent's keys.
    installed = backup_server.file()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600
    lines = installed.read_text().splitlines()
    assert lines[1:] == [
        f"application_credential_id = {CREDENTIAL_ID}",
        f"application_credential_secret = {SECRET}",
    ]
    assert lines[0].startswith("# ")
    # Two ssh calls: read the installed id (none yet), then install from stdin as root.
    check, install = backup_server.calls()
    assert check["argv"][-2:] == [
        LOGIN,
        "sudo -n sed -n 's/^application_credential_id *= *//p' /etc/dupstack/offsite/swift.ini",
    ]
    assert check["stdin"] == ""
    assert install["argv"][-1] == (
        "sudo -n install -D -m 0600 -o root -g root /dev/stdin /etc/dupstack/offsite/swift.ini"
    )
    assert install["argv"][0] == "-T"  # no terminal: stdin is the file
    assert install["argv"][-3] == "--"  # the destination is never read as an option
    assert SECRET in install["stdin"]
    assert_secret_only_on_stdin(backup_server, out, err)
    # What it tells: the three things and their state, then the inventory stanza.
    assert "│ container              │ dupstack-offsite (RegionOne)" in out
    assert f"{CREDENTIAL} ({CREDENTIAL_ID})" in out
    assert f"{LOGIN}:{SERVER_FILE}" in out
    stanza = out.split("inventory stanza:\n")[1].split("next steps:")[0]
    assert stanza.splitlines() == [
        "offsite:",
        "  targets:",
        "    swift:",
        "      type: swift",
        "      auth_url: https://identity.example.com/v3",
        "      region: RegionOne",
        f"      container: {CONTAINER}",
        "      prefix: dupstack",
        f"      credentials_file: {SERVER_FILE}",
    ]
    assert f"ssh {LOGIN} sudo dupctl offsite push --target swift" in out


def test_json_reports_each_state(cloud, backup_server, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    expect_container(cloud, exists=False)
    expect_create(cloud)

    code, out, err = run_cli([*OFFSITE, "--json"], capsys)

    assert code == 0, err
    document = json.loads(out)
    assert document["container"] == {"name": CONTAINER, "region": "RegionOne", "state": "created"}
    assert document["application_credential"] == {
        "name": CREDENTIAL,
        "id": CREDENTIAL_ID,
        "state": "created",
        "access_rules": rules(cloud),
    }
    assert document["credentials_file"] == {
        "server": LOGIN,
        "path": SERVER_FILE,
        "local_file": None,
        "state": "installed",
    }
    target = document["inventory"]["offsite"]["targets"]["swift"]
    assert target["container"] == CONTAINER and target["type"] == "swift"
    assert_secret_only_on_stdin(backup_server, out, err)


def test_target_name_and_prefix(cloud, backup_server, capsys) -> None:
    """--name names the target, the credential and the file; --prefix goes in the stanza."""
    expect_stack(cloud, stack_body(cloud))
    name = "dupstack-backup-dr"
    cloud.register({"method": "GET", "uri": credentials_url(cloud), "json": listing(cloud)})
    expect_container(cloud, exists=True)
    cloud.register(
        {"method": "POST", "uri": credentials_url(cloud), "status_code": 201,
         "json": credential(cloud, CREDENTIAL_ID)},
    )  # fmt: skip

    code, out, err = run_cli([*OFFSITE, "--name", "dr", "--prefix", "p1/db", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.sent("POST", credentials_url(cloud))["application_credential"]["name"] == name
    target = json.loads(out)["inventory"]["offsite"]["targets"]["dr"]
    assert (target["prefix"], target["credentials_file"]) == (
        "p1/db",
        "/etc/dupstack/offsite/dr.ini",
    )
    assert backup_server.file("/etc/dupstack/offsite/dr.ini").is_file()


# --- idempotence and rotation -----------------------------------------------------------


def test_rerun_changes_nothing(cloud, backup_server, capsys) -> None:
    backup_server.install(CREDENTIAL_ID)
    before = backup_server.file().read_text()
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))
    expect_container(cloud, exists=True)

    code, out, err = run_cli([*OFFSITE, "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.writes() == []
    assert backup_server.file().read_text() == before  # the secret in place stays
    assert len(backup_server.calls()) == 1  # only the look at the installed id
    document = json.loads(out)
    assert document["container"]["state"] == "exists"
    assert document["application_credential"]["state"] == "kept"
    assert document["application_credential"]["id"] == CREDENTIAL_ID
    assert document["credentials_file"]["state"] == "up to date"


@pytest.mark.parametrize(
    ("installed", "reason"),
    [
        (None, "rotated (the server had no copy of its secret)"),
        (
            "0123456789abcdef0123456789abcdef",
            "rotated (the server's copy was of another credential)",
        ),
    ],
)
def test_a_server_without_the_secret_gets_a_new_one(
    cloud, backup_server, capsys, installed, reason
) -> None:
    """A secret cannot be read back: a rebuilt server (or a failed install) means rotating."""
    if installed:
        backup_server.install(installed)
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))
    expect_container(cloud, exists=True)
    expect_delete(cloud, CREDENTIAL_ID)
    expect_create(cloud, NEW_CREDENTIAL_ID)

    code, out, err = run_cli([*OFFSITE, "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    credential_state = json.loads(out)["application_credential"]
    assert (credential_state["id"], credential_state["state"]) == (NEW_CREDENTIAL_ID, reason)
    assert f"application_credential_id = {NEW_CREDENTIAL_ID}" in backup_server.file().read_text()
    assert_secret_only_on_stdin(backup_server, out, err)


def test_a_credential_for_another_container_is_rotated(cloud, backup_server, capsys) -> None:
    backup_server.install(CREDENTIAL_ID)
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID, container="old-container"))
    expect_container(cloud, exists=True)
    expect_delete(cloud, CREDENTIAL_ID)
    expect_create(cloud, NEW_CREDENTIAL_ID)

    code, out, err = run_cli([*OFFSITE, "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert json.loads(out)["application_credential"]["state"] == (
        "rotated (its access rules were not this container's)"
    )


def test_rotate_forces_a_new_secret(cloud, backup_server, capsys) -> None:
    backup_server.install(CREDENTIAL_ID)
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))
    expect_container(cloud, exists=True)
    expect_delete(cloud, CREDENTIAL_ID)
    expect_create(cloud, NEW_CREDENTIAL_ID)

    code, out, err = run_cli([*OFFSITE, "--rotate"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert "rotated (--rotate)" in out
    assert SECRET in backup_server.file().read_text()


# --- --to-file: no ssh ------------------------------------------------------------------


def test_to_file_writes_a_private_file_and_says_how_to_install_it(
    cloud, backup_server, capsys, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    local = tmp_path / "swift.ini"
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    expect_container(cloud, exists=False)
    expect_create(cloud)
    # The second run: the local file holds the credential in place, so nothing changes.
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))
    expect_container(cloud, exists=True)

    code, out, err = run_cli([*OFFSITE, "--to-file", str(local)], capsys)

    assert code == 0, err
    assert backup_server.calls() == []  # no ssh at all
    assert stat.S_IMODE(local.stat().st_mode) == 0o600
    assert f"application_credential_secret = {SECRET}" in local.read_text()
    assert SECRET not in out + err
    assert (
        f"ssh {LOGIN} 'sudo -n install -D -m 0600 -o root -g root /dev/stdin "
        f"/etc/dupstack/offsite/swift.ini' < {local}"
    ) in out

    code, out, err = run_cli([*OFFSITE, "--to-file", str(local), "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert json.loads(out)["application_credential"]["state"] == "kept"
    assert backup_server.calls() == []


# --- --remove ---------------------------------------------------------------------------


def test_remove_deletes_credential_and_server_copy_keeps_container(
    cloud, backup_server, capsys
) -> None:
    backup_server.install(CREDENTIAL_ID)
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))
    expect_delete(cloud, CREDENTIAL_ID)

    code, out, err = run_cli([*OFFSITE, "--remove"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert not any("object-store" in write for write in cloud.writes())  # container untouched
    assert not backup_server.file().exists()
    assert backup_server.remote_commands() == ["sudo -n rm -f -- /etc/dupstack/offsite/swift.ini"]
    assert "deleted" in out
    assert f"container {CONTAINER} and its objects (your offsite backups) are kept" in out
    assert "remove offsite.targets.swift from /etc/duplicity/dupstack.yaml" in out


def test_remove_again_is_fine(cloud, backup_server, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)

    code, out, err = run_cli([*OFFSITE, "--remove", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.writes() == []
    document = json.loads(out)
    assert document["application_credential"]["state"] == "absent"
    assert document["container"]["state"] == "kept"


def test_remove_after_the_stack_is_gone_still_deletes_the_credential(
    cloud, backup_server, capsys
) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            **cloud.not_found("orchestration", f"The Stack ({STACK}) could not be found."),
        }
    )
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))
    expect_delete(cloud, CREDENTIAL_ID)

    code, out, err = run_cli([*OFFSITE, "--remove", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert backup_server.calls() == []
    assert json.loads(out)["credentials_file"]["state"] == "skipped (no such stack)"


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--swift", "a/b"], "error: --swift 'a/b' is not a container name"),
        (["--swift", "with space"], "error: --swift 'with space' is not a container name"),
        (["--swift", "x" * 129], "is not a container name"),
        (["--name", "Swift"], "error: --name 'Swift' is not a target name"),
        (["--prefix", "/abs"], "error: --prefix '/abs' is not a prefix"),
        (["--region", "Region One"], "error: --region 'Region One' is not a region name"),
        (["--remove", "--rotate"], "error: --remove and --rotate exclude each other"),
    ],
)
def test_bad_input_exits_2_before_contacting_anything(
    clouds_yaml, http, backup_server, capsys, extra, message
) -> None:
    code, out, err = run_cli([*OFFSITE, *extra], capsys)

    assert code == 2
    assert message in err.splitlines()[0], err
    assert err.splitlines()[1].startswith("hint: ")
    assert out == ""
    assert http.request_history == []
    assert backup_server.calls() == []


def test_missing_stack_exits_3(cloud, backup_server, capsys) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            **cloud.not_found("orchestration", f"The Stack ({STACK}) could not be found."),
        }
    )

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 3
    assert err.splitlines()[0] == "error: no stack named 'backup' in this project"
    cloud.assert_calls()
    assert backup_server.calls() == []


def test_no_swift_in_the_catalog_exits_3(make_cloud, backup_server, capsys) -> None:
    cloud = make_cloud()  # no object-store
    expect_stack(cloud, stack_body(cloud))

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 3
    assert err.splitlines() == [
        "error: the cloud's catalog has no object-store (Swift) service",
        "hint: name the region that has it with --region, or ask your cloud provider",
    ]
    cloud.assert_calls()
    assert cloud.writes() == []


def test_no_swift_in_the_region_exits_3(cloud, backup_server, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))

    code, _out, err = run_cli([*OFFSITE, "--region", "RegionTwo"], capsys)

    assert code == 3
    assert "no object-store (Swift) service in region RegionTwo" in err
    assert cloud.writes() == []


def test_region_picks_that_regions_swift(cloud, backup_server, capsys) -> None:
    """The stack is found where it is; the container, its rules and the stanza use RegionTwo."""
    two = f"https://swift.region-two.example.com/v1/AUTH_{cloud.project_id}"
    body = cloud.token_body(SWIFT_SERVICES)
    swift = next(s for s in body["token"]["catalog"] if s["type"] == "object-store")
    swift["endpoints"] += [
        {"id": f"two{index}", "interface": interface, "region": "RegionTwo",
         "region_id": "RegionTwo", "url": two}
        for index, interface in enumerate(("public", "internal", "admin"))
    ]  # fmt: skip
    cloud.mocker.post(
        "https://identity.example.com/v3/auth/tokens",
        json=body,
        status_code=201,
        headers={"X-Subject-Token": "gAAAAABmTestTokenTestTokenTestToken"},
    )
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    cloud.register(
        {"method": "HEAD", "uri": f"{two}/{CONTAINER}", "status_code": 404, "text": ""},
        {"method": "PUT", "uri": f"{two}/{CONTAINER}", "status_code": 201, "text": ""},
    )
    cloud.register(
        {"method": "POST", "uri": credentials_url(cloud), "status_code": 201,
         "json": credential(cloud, CREDENTIAL_ID)},
    )  # fmt: skip

    code, out, err = run_cli([*OFFSITE, "--region", "RegionTwo", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    document = json.loads(out)
    assert document["inventory"]["offsite"]["targets"]["swift"]["region"] == "RegionTwo"
    sent = cloud.sent("POST", credentials_url(cloud))["application_credential"]
    assert sent["access_rules"] == rules(cloud)  # same account path in that region


def test_keystone_without_access_rules_is_one_clear_error(cloud, backup_server, capsys) -> None:
    """Keystone before Train refuses the access_rules field (its schema has no such key)."""
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    expect_container(cloud, exists=True)
    cloud.register(
        {
            "method": "POST",
            "uri": credentials_url(cloud),
            **keystone_error(
                400,
                "Bad Request",
                "Invalid input for field 'application_credential': Additional properties are "
                "not allowed ('access_rules' was unexpected)",
            ),
        }
    )

    code, out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    error, hint = err.splitlines()
    assert error == (
        "error: this cloud's Keystone does not take access rules (they need Train or later): "
        "it cannot limit a credential to one container"
    )
    assert hint.startswith("hint: no credential was made;")
    cloud.assert_calls()
    assert backup_server.remote_commands() == [
        "sudo -n sed -n 's/^application_credential_id *= *//p' /etc/dupstack/offsite/swift.ini"
    ]  # looked, installed nothing
    assert out == ""


def test_keystone_without_application_credentials(cloud, backup_server, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))
    cloud.register(
        {
            "method": "GET",
            "uri": credentials_url(cloud),
            **keystone_error(404, "Not Found", "The resource could not be found."),
        }
    )

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    assert err.splitlines()[0] == (
        "error: this cloud's Keystone has no application credentials (they need Queens or later)"
    )
    cloud.assert_calls()
    assert cloud.writes() == []  # no container either


def test_keystone_refusing_a_credential_made_by_a_credential(cloud, backup_server, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    expect_container(cloud, exists=True)
    cloud.register(
        {
            "method": "POST",
            "uri": credentials_url(cloud),
            **keystone_error(
                403,
                "Forbidden",
                "You are not authorized to perform the requested action: Using method "
                "'application_credential' is not allowed for managing additional application "
                "credentials.",
            ),
        }
    )

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    error, hint = err.splitlines()
    assert error == (
        "error: Keystone refused to create application credential dupstack-backup-swift (403)"
    )
    assert "log in with a password" in hint
    assert not backup_server.file().exists()


def test_swift_refusing_the_container(cloud, backup_server, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    head = cloud.url("object-store", CONTAINER)
    cloud.register(
        {"method": "HEAD", "uri": head, "status_code": 404, "text": ""},
        {"method": "PUT", "uri": head, "status_code": 403,
         "text": "<html><h1>Forbidden</h1><p>Access was denied to this resource.</p></html>"},
    )  # fmt: skip

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    assert err.splitlines() == [
        f"error: Swift refused to create container {CONTAINER} (403)",
        "hint: your user needs the object-store role of this project (often member or "
        "swiftoperator)",
    ]
    cloud.assert_calls()


def test_unreachable_server_names_ssh_and_changes_nothing(
    cloud, backup_server, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_FAIL", "255:ssh: connect to host 203.0.113.10 port 22: "
                       "Connection timed out")  # fmt: skip
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    error, hint = err.splitlines()
    assert error == (
        f"error: reading application_credential_id of {SERVER_FILE} on {LOGIN}: ssh {LOGIN} "
        "failed: ssh: connect to host 203.0.113.10 port 22: Connection timed out"
    )
    assert "--ssh-cidr" in hint and "--identity FILE" in hint and "--to-file" in hint
    cloud.assert_calls()
    assert cloud.writes() == []  # no container made, the credential in place kept


def test_no_ssh_client_says_so(cloud, capsys, tmp_path, monkeypatch) -> None:
    empty = tmp_path / "no-ssh-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    assert err.splitlines() == [
        "error: no ssh client on this machine",
        "hint: install openssh-client, or use --to-file and copy the file yourself",
    ]
    assert cloud.writes() == []


def test_sudo_wanting_a_password_is_refused_before_rotating(
    cloud, backup_server, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("FAKE_SSH_SUDO", "password")
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud, credential(cloud, CREDENTIAL_ID))

    code, _out, err = run_cli(OFFSITE, capsys)

    assert code == 1
    assert "the server refused (exit 1): sudo: a password is required" in err
    cloud.assert_calls()
    assert cloud.writes() == []


def test_debug_logs_never_hold_the_secret(
    cloud, backup_server, capsys, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.DEBUG)
    # the agent's Swift store quiets keystoneauth for dupctl; this process may have loaded it
    monkeypatch.setattr(logging.getLogger("keystoneauth"), "level", logging.NOTSET)
    expect_stack(cloud, stack_body(cloud))
    expect_lookup(cloud)
    expect_container(cloud, exists=False)
    expect_create(cloud)

    code, out, err = run_cli([*OFFSITE, "--debug"], capsys)

    assert code == 0, err
    assert "REQ: curl" in caplog.text  # keystoneauth did log the other calls
    assert SECRET not in caplog.text
    assert_secret_only_on_stdin(backup_server, out, err)


def test_listed_in_dupstack_help(http, capsys) -> None:
    with pytest.raises(SystemExit):
        run_cli(["--help"], capsys)
    assert "stack-offsite" in capsys.readouterr().out
