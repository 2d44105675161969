"""stack-status at the HTTP layer: the stack and its resources from Heat, as a table or JSON.

Real openstacksdk code talks to a requests-mocked cloud (conftest.FakeCloud); stack-status
only reads (it never writes), so each test also checks that no write was made.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.provisioner.heat_api import (
    ROUTER_ID,
    SECURITY_GROUP_ID,
    STACK,
    STACK_ID,
    VOLUME_ID,
    expect_stack,
    run_cli,
)

SERVER_ID = "e2b4c6d8-0a1c-4e3f-8a5b-7c9d1e3f5a7b"
STATUS = ["stack-status", STACK, "--os-cloud", "testcloud"]
NO_HOST = (
    'ResourceInError: resources.server: Went to status ERROR due to "Message: No valid host '
    'was found. There are not enough hosts available., Code: 500"'
)
# (name, type, physical id) of the resources of dupstack.heat.yaml, in Heat's order.
RESOURCES = [
    ("volume_attachment", "OS::Cinder::VolumeAttachment", "0a9b8c7d-6e5f-4a3b-9c1d-0e2f4a6b8c0d"),
    ("server", "OS::Nova::Server", SERVER_ID),
    ("floating_ip_association", "OS::Neutron::FloatingIPAssociation", "4c5d6e7f-8a9b:3c4d"),
    ("floating_ip", "OS::Neutron::FloatingIP", "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e"),
    ("port", "OS::Neutron::Port", "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6a"),
    ("security_group", "OS::Neutron::SecurityGroup", SECURITY_GROUP_ID),
    ("router_interface", "OS::Neutron::RouterInterface", f"{ROUTER_ID}:subnet_id=b7a6c5d4"),
    ("router", "OS::Neutron::Router", ROUTER_ID),
    ("subnet", "OS::Neutron::Subnet", "b7a6c5d4-e3f2-4a1b-9c8d-7e6f5a4b3c2d"),
    ("network", "OS::Neutron::Net", "c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f"),
    ("volume", "OS::Cinder::Volume", VOLUME_ID),
]


def stack_body(cloud, status: str = "CREATE_COMPLETE", reason: str = "") -> dict[str, Any]:
    body = cloud.load(
        "heat_stack.json",
        STACK_ID=STACK_ID,
        ROUTER_ID=ROUTER_ID,
        SECURITY_GROUP_ID=SECURITY_GROUP_ID,
    )
    body["stack"]["stack_status"] = status
    if reason:
        body["stack"]["stack_status_reason"] = reason
    return body


def resource(name: str, kind: str, physical: str, status: str, reason: str) -> dict[str, Any]:
    """One entry of GET /stacks/NAME/ID/resources, as Heat lists it."""
    base = f"https://orchestration.example.com/v1/PROJECT_ID/stacks/{STACK}/{STACK_ID}"
    return {
        "resource_name": name,
        "logical_resource_id": name,
        "physical_resource_id": physical,
        "resource_type": kind,
        "resource_status": status,
        "resource_status_reason": reason,
        "creation_time": "2024-05-01T10:00:00Z",
        "updated_time": "2024-05-01T10:02:00Z",
        "required_by": [],
        "links": [
            {"href": f"{base}/resources/{name}", "rel": "self"},
            {"href": base, "rel": "stack"},
        ],
    }


def resources(failed: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    """Every resource CREATE_COMPLETE, except `failed`: name -> (status, reason)."""
    failed = failed or {}
    return {
        "resources": [
            resource(name, kind, physical, *failed.get(name, ("CREATE_COMPLETE", "state changed")))
            for name, kind, physical in RESOURCES
        ]
    }


def expect_resources(cloud, body: dict[str, Any]) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK, STACK_ID, "resources"),
            "json": json.loads(json.dumps(body).replace("PROJECT_ID", cloud.project_id)),
        }
    )


def tables(out: str) -> dict[str, dict[str, list[str]]]:
    """The rows of the `outputs` and `resources` tables by first cell, a row's folded
    continuation lines joined back on: {"resources": {"router": ["router", "OS::..."]}}
    (the headings are not rows)."""
    found: dict[str, list[list[str]]] = {}
    title = ""
    for line in out.splitlines():
        if line in ("outputs", "resources"):
            title = line
            found[title] = []
        elif line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            # A resource's type always starts with OS::, so a line that does not is the
            # row above folded onto one more line.
            if cells[0] and (title == "outputs" or cells[1].startswith("OS::")):
                found[title].append(cells)
            else:
                last = found[title][-1]
                last[:] = [a + b for a, b in zip(last, cells, strict=True)]
    return {title: {cells[0]: cells for cells in rows} for title, rows in found.items()}


# --- table ------------------------------------------------------------------------------


def test_table_lists_state_outputs_and_resources(cloud, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # one line per row
    expect_stack(cloud, stack_body(cloud))
    expect_resources(cloud, resources())

    code, out, err = run_cli(STATUS, capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.writes() == []
    lines = out.splitlines()
    assert lines[0] == f"stack backup ({STACK_ID}): CREATE_COMPLETE"
    assert lines[1] == "  Stack CREATE completed successfully"
    shown = tables(out)
    # outputs, sorted by key
    outputs = shown["outputs"]
    assert list(outputs) == sorted(outputs)
    assert outputs["floating_ip"] == ["floating_ip", "203.0.113.10"]
    assert outputs["ssh_command"] == ["ssh_command", "ssh debian@203.0.113.10"]
    assert outputs["router_id"] == ["router_id", ROUTER_ID]
    assert outputs["volume_id"] == ["volume_id", VOLUME_ID]
    assert len(outputs) == 9
    # resources, sorted by name, with type, status and reason
    listed = shown["resources"]
    assert list(listed) == sorted(name for name, _kind, _id in RESOURCES)
    assert listed["server"] == ["server", "OS::Nova::Server", "CREATE_COMPLETE", "state changed"]
    assert listed["floating_ip"][:2] == ["floating_ip", "OS::Neutron::FloatingIP"]
    assert all(cells[2] == "CREATE_COMPLETE" for cells in listed.values())


def test_table_on_a_narrow_terminal_wraps_rather_than_cuts(cloud, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    body = stack_body(cloud)
    body["stack"]["stack_status_reason"] = ""  # Heat may give none: no empty line then
    expect_stack(cloud, body)
    expect_resources(cloud, resources())

    code, out, _err = run_cli(STATUS, capsys)

    assert code == 0
    assert out.splitlines()[:2] == [f"stack backup ({STACK_ID}): CREATE_COMPLETE", "outputs"]
    assert "…" not in out  # nothing was cut short
    assert all(len(line) <= 60 for line in out.splitlines()[1:])  # the tables fit
    outputs, listed = tables(out)["outputs"], tables(out)["resources"]
    assert outputs["router_id"] == ["router_id", ROUTER_ID]  # IDs stay whole
    # Long names and types are folded over several lines, not cut.
    assert {cells[0]: cells[1] for cells in listed.values()} == {
        name: kind for name, kind, _id in RESOURCES
    }
    assert {cells[2] for cells in listed.values()} == {"CREATE_COMPLETE"}
    cloud.assert_calls()


# --- JSON -------------------------------------------------------------------------------


def test_json_has_status_outputs_and_resources(cloud, capsys) -> None:
    expect_stack(cloud, stack_body(cloud))
    expect_resources(cloud, resources())

    code, out, err = run_cli([*STATUS, "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.writes() == []
    document = json.loads(out)
    assert set(document) == {"name", "id", "status", "reason", "outputs", "resources"}
    assert (document["name"], document["id"], document["status"]) == (
        STACK,
        STACK_ID,
        "CREATE_COMPLETE",
    )
    assert document["reason"] == "Stack CREATE completed successfully"
    assert document["outputs"] == {
        "floating_ip": "203.0.113.10",
        "ssh_command": "ssh debian@203.0.113.10",
        "server_id": SERVER_ID,
        "server_address": "192.168.254.10",
        "router_id": ROUTER_ID,
        "subnet_id": "b7a6c5d4-e3f2-4a1b-9c8d-7e6f5a4b3c2d",
        "subnet_cidr": "192.168.254.0/24",
        "security_group_id": SECURITY_GROUP_ID,
        "volume_id": VOLUME_ID,
    }
    assert [res["name"] for res in document["resources"]] == sorted(n for n, _t, _i in RESOURCES)
    assert {
        "name": "server",
        "type": "OS::Nova::Server",
        "status": "CREATE_COMPLETE",
        "reason": "state changed",
        "physical_id": SERVER_ID,
    } in document["resources"]
    assert err == ""


# --- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_create_failed_stack_exits_1_and_shows_the_failing_resource(
    cloud, capsys, monkeypatch, as_json
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    reason = f"Resource CREATE failed: {NO_HOST}"
    body = stack_body(cloud, "CREATE_FAILED", reason)
    for output in body["stack"]["outputs"]:
        if output["output_key"] in ("floating_ip", "ssh_command"):
            output["output_value"] = None
            output["output_error"] = "The Referenced Attribute (floating_ip ...) is incorrect."
    expect_stack(cloud, body)
    failed = {"server": ("CREATE_FAILED", NO_HOST), "volume_attachment": ("INIT_COMPLETE", "")}
    expect_resources(cloud, resources(failed))

    code, out, err = run_cli([*STATUS, "--json"] if as_json else STATUS, capsys)

    assert code == 1
    cloud.assert_calls()
    assert cloud.writes() == []
    if as_json:
        document = json.loads(out)
        assert (document["status"], document["reason"]) == ("CREATE_FAILED", reason)
        server = next(res for res in document["resources"] if res["name"] == "server")
        assert (server["status"], server["reason"]) == ("CREATE_FAILED", NO_HOST)
        assert document["outputs"]["floating_ip"] is None
    else:
        assert out.splitlines()[:2] == [
            f"stack backup ({STACK_ID}): CREATE_FAILED",
            f"  {reason}",
        ]
        listed = tables(out)["resources"]
        assert listed["server"] == ["server", "OS::Nova::Server", "CREATE_FAILED", NO_HOST]
        assert listed["volume_attachment"][2] == "INIT_COMPLETE"
    assert "error" not in err  # the state is the answer, not an error of the command


def test_missing_stack_exits_3_with_a_hint(cloud, capsys) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            **cloud.not_found("orchestration", f"The Stack ({STACK}) could not be found."),
        }
    )

    code, out, err = run_cli(STATUS, capsys)

    assert code == 3
    assert err.splitlines() == [
        "error: no stack named 'backup' in this project",
        "hint: list stacks with `openstack stack list`, or create it: stack-start backup",
    ]
    assert out == ""
    cloud.assert_calls()


def test_deleted_stack_is_missing_too(cloud, capsys) -> None:
    """Heat may still answer a just-deleted stack by name, as DELETE_COMPLETE."""
    canonical = cloud.url("orchestration", "stacks", STACK, STACK_ID)
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            "status_code": 302,
            "headers": {"Location": canonical},
        },
        {"method": "GET", "uri": canonical, "json": stack_body(cloud, "DELETE_COMPLETE")},
    )

    code, _out, err = run_cli(STATUS, capsys)

    assert code == 3
    assert "error: no stack named 'backup' in this project" in err
    cloud.assert_calls()


def test_reason_with_brackets_is_shown_as_is(cloud, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    reason = "Error: resources.volume_attachment: device [/dev/vdb] is busy"
    expect_stack(cloud, stack_body(cloud, "CREATE_FAILED", f"Resource CREATE failed: {reason}"))
    expect_resources(cloud, resources({"volume_attachment": ("CREATE_FAILED", reason)}))

    code, out, err = run_cli(STATUS, capsys)

    assert "internal error" not in err, err  # today: internal error: MarkupError
    assert code == 1
    assert tables(out)["resources"]["volume_attachment"][3] == reason
