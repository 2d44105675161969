"""stack-delete at the HTTP layer: what it asks Heat, Neutron and Cinder to do, call by call.

Real openstacksdk code talks to a requests-mocked cloud (conftest.FakeCloud). The stack
comes from Heat with its outputs (router, subnets, security group, volume); stack-delete
first undoes stack-connect in Neutron, then deletes the stack (Heat redirects
DELETE /stacks/ID to /stacks/NAME/ID as it does for GET), waits until Heat says the stack
is gone, and deletes the backup volume in Cinder only when asked and confirmed.
"""

from __future__ import annotations

import io
from typing import Any

import pytest

from provisioner import stacks
from tests.provisioner import heat_api
from tests.provisioner.heat_api import (
    BACKUP_CIDR,
    BACKUP_SUBNET_ID,
    ROUTER_ID,
    SECURITY_GROUP_ID,
    STACK,
    STACK_ID,
    VOLUME_ID,
    run_cli,
)

DELETE = ["stack-delete", STACK, "--os-cloud", "testcloud"]
ADMIN_RULE_ID = "0d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"


class Tenant:
    """A tenant subnet stack-connect attached through a new port (its gateway was taken)."""

    def __init__(self, name: str, subnet_id: str, prefix: str, port_id: str, rule_id: str):
        self.name = name
        self.id = subnet_id
        self.cidr = f"{prefix}.0/24"
        self.gateway = f"{prefix}.1"
        self.via = f"{prefix}.57"
        self.port_id = port_id
        self.rule_id = rule_id
        self.network_id = "a4c1d2e3-f4a5-4b6c-9d7e-8f9a0b1c2d3e"
        self.other_route = {"destination": "172.16.0.0/16", "nexthop": f"{prefix}.254"}
        self.backup_route = {"destination": BACKUP_CIDR, "nexthop": self.via}


APP = Tenant(
    "app-subnet",
    "6b1f0c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e",
    "10.0.0",
    "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
    "7e6d5c4b-3a2f-4e1d-9c0b-8a7f6e5d4c3b",
)
DB = Tenant(
    "db-subnet",
    "0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c",
    "10.0.1",
    "6c5d4e3f-2a1b-4c0d-9e8f-7a6b5c4d3e2f",
    "8f7e6d5c-4b3a-4f2e-8d1c-0b9a8f7e6d5c",
)


class Terminal(io.StringIO):
    """stdin as on a terminal: isatty() is true, and it yields what the user types."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_poll_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll Heat without the 2 s pause between reads (a setting, not a function)."""
    monkeypatch.setattr(stacks, "POLL_SECONDS", 0.0)


# --- bodies ----------------------------------------------------------------------------


def stack_body(cloud, status: str = "CREATE_COMPLETE", **outputs: Any) -> dict[str, Any]:
    """The backup stack; `outputs` replace (None: drop) some of its outputs."""
    body = cloud.load(
        "heat_stack.json",
        STACK_ID=STACK_ID,
        ROUTER_ID=ROUTER_ID,
        SECURITY_GROUP_ID=SECURITY_GROUP_ID,
    )
    stack = body["stack"]
    stack["stack_status"] = status
    stack["stack_status_reason"] = {
        "CREATE_COMPLETE": "Stack CREATE completed successfully",
        "DELETE_IN_PROGRESS": "Stack DELETE started",
        "DELETE_COMPLETE": "Stack DELETE completed successfully",
        "DELETE_FAILED": "Resource DELETE failed: Conflict: resources.router: Router "
        f"{ROUTER_ID} still has ports",
    }[status]
    kept = []
    for output in stack["outputs"]:
        key = output["output_key"]
        if key in outputs:
            if outputs[key] is None:
                continue
            output = {**output, "output_value": outputs[key]}
        kept.append(output)
    stack["outputs"] = kept
    return body


def port(cloud, port_id: str, owner: str, ips: list[tuple[str, str]], **fields: Any):
    body = cloud.load("neutron_port.json", PORT_ID=port_id)["port"]
    return {
        **body,
        "device_id": ROUTER_ID,
        "device_owner": owner,
        "fixed_ips": [{"subnet_id": s, "ip_address": ip} for s, ip in ips],
        **fields,
    }


def router_ports(
    cloud, *tenants: Tenant, owner: str = "network:router_interface"
) -> dict[str, Any]:
    """The backup router's ports: gateway, backup-subnet interface, one per tenant subnet
    (with device_owner `owner`)."""
    gateway = port(
        cloud,
        "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
        "network:router_gateway",
        [("5e1d2c3b-4a59-4876-9a0b-1c2d3e4f5a6b", "203.0.113.5")],
        network_id="0b6b6f57-6f3e-4c2f-9d43-3bb0c9c1f8a2",
    )
    backup = port(
        cloud,
        "3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f",
        "network:router_interface",
        [(BACKUP_SUBNET_ID, "192.168.254.1")],
        network_id="c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
    )
    interfaces = [
        port(
            cloud,
            tenant.port_id,
            owner,
            [(tenant.id, tenant.via)],
            name=f"dupstack-{STACK}-{tenant.name}",
            network_id=tenant.network_id,
        )
        for tenant in tenants
    ]
    return {"ports": [gateway, backup, *interfaces]}


def subnet(cloud, tenant: Tenant, routes: list[dict[str, str]]) -> dict[str, Any]:
    return cloud.merged(
        cloud.load("neutron_subnet.json"),
        id=tenant.id,
        name=tenant.name,
        cidr=tenant.cidr,
        gateway_ip=tenant.gateway,
        allocation_pools=[{"start": tenant.gateway[:-1] + "2", "end": tenant.gateway[:-1] + "254"}],
        host_routes=routes,
    )["subnet"]


def ssh_rule(cloud, cidr: str, rule_id: str) -> dict[str, Any]:
    body = cloud.load(
        "neutron_security_group_rule.json", RULE_ID=rule_id, SECURITY_GROUP_ID=SECURITY_GROUP_ID
    )["security_group_rule"]
    return {**body, "remote_ip_prefix": cidr, "normalized_cidr": cidr}


def ssh_rules(cloud, *tenants: Tenant) -> dict[str, Any]:
    """The backup security group's tcp ingress: the admin's SSH, then one rule per subnet."""
    rules = [ssh_rule(cloud, "203.0.113.7/32", ADMIN_RULE_ID)]
    rules += [ssh_rule(cloud, tenant.cidr, tenant.rule_id) for tenant in tenants]
    return {"security_group_rules": rules}


def heat_event(number: int, resource: str, status: str, reason: str = "state changed"):
    return {
        "id": f"4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c{number:02d}",
        "event_time": f"2024-05-02T09:{number:02d}:00Z",
        "resource_name": resource,
        "logical_resource_id": resource,
        "physical_resource_id": "",
        "resource_status": status,
        "resource_status_reason": reason,
        "links": [],
    }


CREATE_EVENTS = [
    ("server", "CREATE_IN_PROGRESS"),
    ("server", "CREATE_COMPLETE"),
    (STACK, "CREATE_COMPLETE"),
]
DELETE_EVENTS = [
    (STACK, "DELETE_IN_PROGRESS"),
    ("volume_attachment", "DELETE_IN_PROGRESS"),
    ("volume_attachment", "DELETE_COMPLETE"),
    ("server", "DELETE_IN_PROGRESS"),
    ("server", "DELETE_COMPLETE"),
]


def events(pairs: list[tuple[str, str]], reasons: dict[str, str] | None = None):
    reasons = reasons or {}
    return {
        "events": [
            heat_event(number, resource, status, reasons.get(resource, "state changed"))
            for number, (resource, status) in enumerate(pairs)
        ]
    }


# --- expected call groups --------------------------------------------------------------


def canonical(cloud) -> str:
    return cloud.url("orchestration", "stacks", STACK, STACK_ID)


def expect_no_stack(cloud) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            **cloud.not_found("orchestration", f"The Stack ({STACK}) could not be found."),
        }
    )


def expect_router_ports(cloud, *tenants: Tenant, owner: str = "network:router_interface"):
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "ports", device_id=ROUTER_ID),
            "json": router_ports(cloud, *tenants, owner=owner),
        }
    )


def expect_rules(cloud, *tenants: Tenant) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url(
                "network",
                "security-group-rules",
                security_group_id=SECURITY_GROUP_ID,
                direction="ingress",
                protocol="tcp",
            ),
            "json": ssh_rules(cloud, *tenants),
        }
    )


def expect_detach(
    cloud, tenant: Tenant, ports_of: tuple[Tenant, ...], owner: str = "network:router_interface"
) -> None:
    """detach_subnet(ID): the subnet, the router's ports, then route, interface, SSH rule."""
    connected = subnet(cloud, tenant, [tenant.other_route, tenant.backup_route])
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets", tenant.id),
            "json": {"subnet": connected},
        }
    )
    expect_router_ports(cloud, *ports_of, owner=owner)
    cloud.register(
        {
            "method": "PUT",
            "uri": cloud.url("network", "subnets", tenant.id),
            # Only the route to the backup subnet goes; the tenant's own routes stay.
            "body": {"subnet": {"host_routes": [tenant.other_route]}},
            "json": {"subnet": {**connected, "host_routes": [tenant.other_route]}},
        },
        {
            "method": "PUT",
            "uri": cloud.url("network", "routers", ROUTER_ID, "remove_router_interface"),
            "body": {"port_id": tenant.port_id},
            "json": {
                "id": ROUTER_ID,
                "tenant_id": cloud.project_id,
                "project_id": cloud.project_id,
                "port_id": tenant.port_id,
                "subnet_id": tenant.id,
                "subnet_ids": [tenant.id],
                "network_id": tenant.network_id,
            },
        },
    )
    expect_rules(cloud, *ports_of)
    cloud.register(
        {
            "method": "DELETE",
            "uri": cloud.url("network", "security-group-rules", tenant.rule_id),
            "status_code": 204,
        }
    )


def expect_heat_delete(cloud) -> None:
    """DELETE /stacks/ID: Heat's lookup redirects it, keystoneauth follows with DELETE."""
    cloud.register(
        {
            "method": "DELETE",
            "uri": cloud.url("orchestration", "stacks", STACK_ID),
            "status_code": 302,
            "headers": {"Location": canonical(cloud)},
        },
        {"method": "DELETE", "uri": canonical(cloud), "status_code": 204},
    )


def expect_poll(
    cloud,
    body: dict[str, Any] | None,
    pairs: list[tuple[str, str]] = (),
    events_read: bool = True,
    **kw: Any,
) -> None:
    """One read of the stack by ID while waiting: 404 when `body` is None (gone), else the
    stack, then (unless `events_read` is false) its events."""
    if body is None:
        cloud.register(
            {
                "method": "GET",
                "uri": cloud.url("orchestration", "stacks", STACK_ID),
                **cloud.not_found("orchestration", f"The Stack ({STACK_ID}) could not be found."),
            }
        )
        return
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK_ID),
            "status_code": 302,
            "headers": {"Location": canonical(cloud)},
        },
        {"method": "GET", "uri": canonical(cloud), "json": body},
    )
    if events_read:
        cloud.register(
            {
                "method": "GET",
                "uri": cloud.url(
                    "orchestration", "stacks", STACK, STACK_ID, "events", sort_dir="asc"
                ),
                "json": events(list(pairs), **kw),
            }
        )


def expect_deleted(cloud, gone: str = "404") -> None:
    """DELETE, one poll DELETE_IN_PROGRESS, then gone: a 404, or DELETE_COMPLETE by ID."""
    expect_heat_delete(cloud)
    expect_poll(cloud, stack_body(cloud, "DELETE_IN_PROGRESS"), CREATE_EVENTS + DELETE_EVENTS[:3])
    if gone == "404":
        expect_poll(cloud, None)
    else:
        # The SDK turns a DELETE_COMPLETE stack into NotFound: no events are read then.
        expect_poll(cloud, stack_body(cloud, "DELETE_COMPLETE"), events_read=False)


def expect_volume_deleted(cloud) -> None:
    cloud.register(
        {
            "method": "DELETE",
            # The SDK sends Cinder's delete options explicitly (force: microversion >= 3.23).
            "uri": cloud.url("block-storage", "volumes", VOLUME_ID, cascade="False", force="False"),
            "status_code": 202,
        }
    )


def write_lines(cloud) -> list[str]:
    """The writes as 'METHOD path', without scheme and host."""
    return [" ".join((w.split()[0], w.split()[1].split(".com", 1)[1])) for w in cloud.writes()]


# --- plain delete: the volume is kept ---------------------------------------------------


@pytest.mark.parametrize("gone", ["404", "DELETE_COMPLETE"])
def test_delete_waits_until_gone_and_keeps_the_volume(cloud, capsys, gone) -> None:
    expect_stack(cloud)
    expect_router_ports(cloud)  # nothing connected: only the gateway and the backup subnet
    expect_deleted(cloud, gone)

    code, out, err = run_cli(DELETE, capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert write_lines(cloud) == [
        f"DELETE /v1/{cloud.project_id}/stacks/{STACK_ID}",
        f"DELETE /v1/{cloud.project_id}/stacks/{STACK}/{STACK_ID}",
    ]
    assert out.splitlines() == [
        "stack backup deleted",
        f"backup volume {VOLUME_ID} kept; to bring the server back on it:",
        f"  stack-start backup --restore-volume {VOLUME_ID} ...",
    ]
    assert f"deleting stack backup ({STACK_ID})" in err
    # Only DELETE events are streamed, each once, never the stack's own.
    progress = [line.split(None, 1)[1] for line in err.splitlines() if line.startswith("  ")]
    assert progress == [
        "volume_attachment        DELETE_IN_PROGRESS",
        "volume_attachment        DELETE_COMPLETE",
    ]
    assert not [r for r in cloud.requests() if "block-storage" in r.url]
    assert "disconnected" not in err


def test_stack_without_router_output_is_deleted_without_asking_neutron(cloud, capsys) -> None:
    """A stack that failed before its router existed: nothing of stack-connect to undo."""
    expect_stack(cloud, stack_body(cloud, router_id=None, volume_id=None))
    expect_deleted(cloud)

    code, out, err = run_cli(DELETE, capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert not [r for r in cloud.requests() if "network.example.com" in r.url]
    assert out == "stack backup deleted\n"  # no volume_id output: nothing to say about it


# --- stack-connect is undone first -----------------------------------------------------


def test_connected_subnets_are_disconnected_before_the_stack_is_deleted(cloud, capsys) -> None:
    expect_stack(cloud)
    expect_router_ports(cloud, APP, DB)
    # Sorted by subnet ID: db-subnet (0f9e...) first; each detach re-reads the router ports.
    expect_detach(cloud, DB, (APP, DB))
    expect_detach(cloud, APP, (APP,))
    expect_deleted(cloud)

    code, out, err = run_cli(DELETE, capsys)

    assert code == 0, err
    cloud.assert_calls()
    project = cloud.project_id
    assert write_lines(cloud) == [
        f"PUT /v2.0/subnets/{DB.id}",
        f"PUT /v2.0/routers/{ROUTER_ID}/remove_router_interface",
        f"DELETE /v2.0/security-group-rules/{DB.rule_id}",
        f"PUT /v2.0/subnets/{APP.id}",
        f"PUT /v2.0/routers/{ROUTER_ID}/remove_router_interface",
        f"DELETE /v2.0/security-group-rules/{APP.rule_id}",
        f"DELETE /v1/{project}/stacks/{STACK_ID}",
        f"DELETE /v1/{project}/stacks/{STACK}/{STACK_ID}",
    ]
    # Nothing touched the backup's own subnet, its router gateway, or the admin's SSH rule.
    touched = " ".join(cloud.writes())
    for untouched in (BACKUP_SUBNET_ID, "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e", ADMIN_RULE_ID):
        assert untouched not in touched
    assert (
        "disconnected db-subnet: host route 192.168.254.0/24 via 10.0.1.57 removed; "
        "router left the subnet (10.0.1.57); SSH from 10.0.1.0/24 no longer allowed"
    ) in err
    assert "disconnected app-subnet: host route 192.168.254.0/24 via 10.0.0.57 removed" in err
    assert err.index("disconnected app-subnet") < err.index("deleting stack backup")
    assert f"backup volume {VOLUME_ID} kept" in out


def test_interfaces_of_an_ha_router_are_disconnected_too(cloud, capsys) -> None:
    ha = "network:ha_router_replicated_interface"
    expect_stack(cloud)
    expect_router_ports(cloud, APP, owner=ha)
    expect_detach(cloud, APP, (APP,), owner=ha)
    expect_deleted(cloud)

    code, _out, err = run_cli(DELETE, capsys)

    assert code == 0, err
    cloud.assert_calls()


def test_failed_stack_without_subnet_cidr_output_can_still_be_deleted(cloud, capsys) -> None:
    """Retrying after DELETE_FAILED: Heat has deleted the backup subnet (its get_attr output
    is now null) but not the router."""
    expect_stack(cloud, stack_body(cloud, "DELETE_FAILED", subnet_cidr=None))
    expect_router_ports(cloud)
    expect_deleted(cloud)

    code, _out, err = run_cli(DELETE, capsys)

    assert code == 0, err
    assert f"DELETE /v1/{cloud.project_id}/stacks/{STACK}/{STACK_ID}" in write_lines(cloud)


# --- --delete-volume --------------------------------------------------------------------


def test_delete_volume_without_terminal_or_yes_deletes_nothing(cloud, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("backup\n"))  # piped, not a terminal
    expect_stack(cloud)

    code, out, err = run_cli([*DELETE, "--delete-volume"], capsys)

    assert code == 2
    assert (
        "error: refusing to delete the backup volume without confirmation: nothing was deleted"
    ) in err
    assert "hint: run it on a terminal to confirm, or add --yes" in err
    assert out == ""
    cloud.assert_calls()
    assert cloud.writes() == []


def test_delete_volume_wrong_name_typed_deletes_nothing(cloud, capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("bakup\n"))
    expect_stack(cloud)

    code, out, err = run_cli([*DELETE, "--delete-volume"], capsys)

    assert code == 2
    assert f"This deletes backup volume {VOLUME_ID} and every backup on it." in err
    assert "Type the stack name (backup) to confirm: " in err
    assert "error: not confirmed: nothing was deleted" in err
    assert "hint: type the stack name exactly" in err
    assert out == ""
    cloud.assert_calls()
    assert cloud.writes() == []


def test_delete_volume_end_of_input_at_the_prompt_deletes_nothing(cloud, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal(""))  # Ctrl-D at the prompt
    expect_stack(cloud)

    code, _out, err = run_cli([*DELETE, "--delete-volume"], capsys)

    assert code == 2
    assert "error: not confirmed: nothing was deleted" in err
    assert cloud.writes() == []


def test_delete_volume_confirmed_on_terminal_deletes_stack_then_volume(
    cloud, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("sys.stdin", Terminal("  backup \n"))  # surrounding blanks are fine
    expect_stack(cloud)
    expect_router_ports(cloud)
    expect_deleted(cloud)
    expect_volume_deleted(cloud)

    code, out, err = run_cli([*DELETE, "--delete-volume"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert write_lines(cloud) == [
        f"DELETE /v1/{cloud.project_id}/stacks/{STACK_ID}",
        f"DELETE /v1/{cloud.project_id}/stacks/{STACK}/{STACK_ID}",
        f"DELETE /v3/{cloud.project_id}/volumes/{VOLUME_ID}?cascade=False&force=False",
    ]
    assert "Type the stack name (backup) to confirm: " in err
    assert out.splitlines() == ["stack backup deleted", f"backup volume {VOLUME_ID} deleted"]


def test_delete_volume_yes_deletes_stack_then_volume_without_asking(
    cloud, capsys, monkeypatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script: no terminal, nothing typed
    expect_stack(cloud)
    expect_router_ports(cloud, APP)
    expect_detach(cloud, APP, (APP,))
    expect_deleted(cloud)
    expect_volume_deleted(cloud)

    code, out, err = run_cli([*DELETE, "--delete-volume", "--yes"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert write_lines(cloud)[-3:] == [
        f"DELETE /v1/{cloud.project_id}/stacks/{STACK_ID}",
        f"DELETE /v1/{cloud.project_id}/stacks/{STACK}/{STACK_ID}",
        f"DELETE /v3/{cloud.project_id}/volumes/{VOLUME_ID}?cascade=False&force=False",
    ]
    assert "confirm" not in err
    assert out.splitlines() == ["stack backup deleted", f"backup volume {VOLUME_ID} deleted"]


def test_delete_volume_without_block_storage_is_refused_before_anything(make_cloud, capsys) -> None:
    cloud = make_cloud(services=("identity", "network", "orchestration"))
    expect_stack(cloud)

    code, out, err = run_cli([*DELETE, "--delete-volume", "--yes"], capsys)

    assert code == 1
    assert (
        "error: the cloud's catalog has no block-storage service: cannot delete the volume"
    ) in err
    assert "hint: nothing was deleted; run without --delete-volume to keep the volume" in err
    assert out == ""
    cloud.assert_calls()
    assert cloud.writes() == []
    assert not [r for r in cloud.mocker.request_history if "block-storage" in r.url]


def test_delete_volume_when_the_stack_names_no_volume_is_refused(cloud, capsys) -> None:
    expect_stack(cloud, stack_body(cloud, volume_id=None))

    code, _out, err = run_cli([*DELETE, "--delete-volume", "--yes"], capsys)

    assert code == 2
    assert "error: stack backup reports no volume_id output; cannot tell which volume" in err
    assert "hint: delete the volume by hand with `openstack volume delete`" in err
    cloud.assert_calls()
    assert cloud.writes() == []


# --- failures ---------------------------------------------------------------------------


def test_delete_failed_names_the_resource_and_keeps_the_volume(cloud, capsys) -> None:
    reason = (
        "Conflict: resources.router: Router d2a3b4c5-6e7f-4a8b-9c0d-1e2f3a4b5c6d still has "
        "ports. Neutron server returns request_ids: ['req-5b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e']"
    )
    expect_stack(cloud)
    expect_router_ports(cloud)
    expect_heat_delete(cloud)
    expect_poll(
        cloud,
        stack_body(cloud, "DELETE_FAILED"),
        [*CREATE_EVENTS, (STACK, "DELETE_IN_PROGRESS"), ("router", "DELETE_FAILED")],
        reasons={"router": reason},
    )
    resources = [
        {
            "resource_name": name,
            "logical_resource_id": name,
            "physical_resource_id": physical,
            "resource_type": kind,
            "resource_status": status,
            "resource_status_reason": why,
            "updated_time": "2024-05-02T09:03:00Z",
            "creation_time": "2024-05-01T10:00:00Z",
            "required_by": [],
            "links": [],
        }
        for name, physical, kind, status, why in [
            ("floating_ip", "", "OS::Neutron::FloatingIP", "DELETE_COMPLETE", "state changed"),
            ("router", ROUTER_ID, "OS::Neutron::Router", "DELETE_FAILED", reason),
            ("volume", VOLUME_ID, "OS::Cinder::Volume", "CREATE_COMPLETE", "state changed"),
        ]
    ]
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK, STACK_ID, "resources"),
            "json": {"resources": resources},
        }
    )

    code, out, err = run_cli([*DELETE, "--delete-volume", "--yes"], capsys)

    assert code == 4
    cloud.assert_calls()
    # The volume is not deleted when the stack is not.
    assert not [r for r in cloud.requests() if "block-storage" in r.url]
    error = next(line for line in err.splitlines() if line.startswith("error:"))
    assert error == f"error: stack backup DELETE_FAILED: resource router failed: {reason}"
    assert "hint: see `stack-status backup`, then try again" in err
    assert f"router                   DELETE_FAILED  {reason}" in err  # the streamed event
    assert "Traceback" not in err
    assert out == ""


def test_delete_still_in_progress_at_the_timeout_exits_5(cloud, capsys) -> None:
    expect_stack(cloud)
    expect_router_ports(cloud)
    expect_heat_delete(cloud)
    expect_poll(cloud, stack_body(cloud, "DELETE_IN_PROGRESS"), [(STACK, "DELETE_IN_PROGRESS")])

    code, out, err = run_cli([*DELETE, "--delete-volume", "--yes", "--timeout", "0"], capsys)

    assert code == 5
    cloud.assert_calls()
    assert "error: stack backup still DELETE_IN_PROGRESS after 0 s" in err
    assert "hint: it goes on in the cloud: watch it with `stack-status backup`" in err
    assert not [r for r in cloud.requests() if "block-storage" in r.url]  # volume untouched
    assert out == ""


def test_missing_stack_exit_3_deletes_nothing(cloud, capsys) -> None:
    expect_no_stack(cloud)

    code, out, err = run_cli(DELETE, capsys)

    assert code == 3
    assert "error: no stack named 'backup' in this project" in err
    assert "hint: list stacks with `openstack stack list`, or create it: stack-start backup" in err
    assert out == ""
    cloud.assert_calls()
    assert cloud.writes() == []


def expect_stack(cloud, body: dict[str, Any] | None = None) -> None:
    heat_api.expect_stack(cloud, body or stack_body(cloud))
