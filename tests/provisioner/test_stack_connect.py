"""stack-connect at the HTTP layer: what it asks Neutron (and Heat) to do, call by call.

The backup stack's outputs (router, subnet CIDR, security group) come from Heat; the
tenant subnet, the router's ports and the security group rules from Neutron. Bodies are
shaped like Neutron's; every expected call is listed in order and checked with its body.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from provisioner import subnets
from tests.provisioner import heat_api
from tests.provisioner.heat_api import (
    BACKUP_CIDR,
    BACKUP_SUBNET_ID,
    ROUTER_ID,
    SECURITY_GROUP_ID,
    STACK,
    STACK_ID,
    run_cli,
)

SUBNET_ID = "6b1f0c1e-2d3a-4b5c-8d9e-0f1a2b3c4d5e"
NETWORK_ID = "a4c1d2e3-f4a5-4b6c-9d7e-8f9a0b1c2d3e"
TENANT_ROUTER_ID = "1d2c3b4a-5f6e-4d7c-8b9a-0f1e2d3c4b5a"
NEW_PORT_ID = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
NEW_PORT_IP = "10.0.0.57"
RULE_ID = "7e6d5c4b-3a2f-4e1d-9c0b-8a7f6e5d4c3b"
VPN_ROUTE = {"destination": "172.16.0.0/16", "nexthop": "10.0.0.254"}
BACKUP_ROUTE = {"destination": BACKUP_CIDR, "nexthop": NEW_PORT_IP}
CONNECT = ["stack-connect", STACK, "--os-cloud", "testcloud"]


# --- bodies ----------------------------------------------------------------------------


def subnet(cloud, **fields: Any) -> dict[str, Any]:
    fields.setdefault("host_routes", [VPN_ROUTE])
    return cloud.merged(cloud.load("neutron_subnet.json"), **fields)["subnet"]


def port(cloud, port_id: str, device_id: str, owner: str, ips: list[tuple[str, str]], **fields):
    body = cloud.load("neutron_port.json", PORT_ID=port_id)["port"]
    return {
        **body,
        "device_id": device_id,
        "device_owner": owner,
        "fixed_ips": [{"subnet_id": s, "ip_address": ip} for s, ip in ips],
        **fields,
    }


def router_ports(cloud, *extra: dict[str, Any]) -> dict[str, Any]:
    """The backup router's ports: its gateway, its backup-subnet interface, and `extra`."""
    gateway = port(
        cloud,
        "2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e",
        ROUTER_ID,
        "network:router_gateway",
        [("5e1d2c3b-4a59-4876-9a0b-1c2d3e4f5a6b", "203.0.113.5")],
        network_id="0b6b6f57-6f3e-4c2f-9d43-3bb0c9c1f8a2",
    )
    backup = port(
        cloud,
        "3c4d5e6f-7a8b-4c9d-0e1f-2a3b4c5d6e7f",
        ROUTER_ID,
        "network:router_interface",
        [(BACKUP_SUBNET_ID, "192.168.254.1")],
        network_id="c3d4e5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f",
    )
    return {"ports": [gateway, backup, *extra]}


def our_port(cloud, ip: str = NEW_PORT_IP, port_id: str = NEW_PORT_ID) -> dict[str, Any]:
    """The backup router's interface on the tenant subnet."""
    return port(
        cloud,
        port_id,
        ROUTER_ID,
        "network:router_interface",
        [(SUBNET_ID, ip)],
        name=f"dupstack-{STACK}-app-subnet",
    )


def ssh_rule(cloud, cidr: str, rule_id: str = RULE_ID) -> dict[str, Any]:
    body = cloud.load(
        "neutron_security_group_rule.json", RULE_ID=rule_id, SECURITY_GROUP_ID=SECURITY_GROUP_ID
    )["security_group_rule"]
    return {**body, "remote_ip_prefix": cidr, "normalized_cidr": cidr}


def stack_body(cloud) -> dict[str, Any]:
    return cloud.load(
        "heat_stack.json",
        STACK_ID=STACK_ID,
        ROUTER_ID=ROUTER_ID,
        SECURITY_GROUP_ID=SECURITY_GROUP_ID,
    )


# --- expected call groups --------------------------------------------------------------


def expect_subnet_by_name(cloud, body: dict[str, Any]) -> None:
    """find_subnet(name): GET /subnets/NAME is a 404, then GET /subnets?name=NAME."""
    name = body["name"]
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets", name),
            **cloud.not_found("network", f"Subnet {name} could not be found."),
        },
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets", name=name),
            "json": {"subnets": [body]},
        },
    )


def expect_router_ports(cloud, *extra: dict[str, Any]) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "ports", device_id=ROUTER_ID),
            "json": router_ports(cloud, *extra),
        }
    )


def expect_gateway_lookup(cloud, holders: list[dict[str, Any]]) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url(
                "network",
                "ports",
                network_id=NETWORK_ID,
                fixed_ips=[f"subnet_id={SUBNET_ID}", "ip_address=10.0.0.1"],
            ),
            "json": {"ports": holders},
        }
    )


def expect_rules(cloud, *rules: dict[str, Any]) -> None:
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
            "json": {"security_group_rules": list(rules)},
        }
    )


def expect_rule_created(cloud, cidr: str = "10.0.0.0/24") -> None:
    cloud.register(
        {
            "method": "POST",
            "uri": cloud.url("network", "security-group-rules"),
            "status_code": 201,
            "body": {
                "security_group_rule": {
                    "security_group_id": SECURITY_GROUP_ID,
                    "direction": "ingress",
                    "ethertype": "IPv4",
                    "protocol": "tcp",
                    "port_range_min": 22,
                    "port_range_max": 22,
                    "remote_ip_prefix": cidr,
                    "description": "dupstack: SSH/SFTP from tenant subnet app-subnet",
                }
            },
            "json": {"security_group_rule": ssh_rule(cloud, cidr)},
        }
    )


def tenant_gateway_port(cloud) -> dict[str, Any]:
    """The tenant's own router holding the subnet's gateway IP (the usual case)."""
    return port(
        cloud,
        "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a",
        TENANT_ROUTER_ID,
        "network:router_interface",
        [(SUBNET_ID, "10.0.0.1")],
    )


# --- attach -----------------------------------------------------------------------------


def test_gateway_taken_joins_through_a_new_port_and_adds_a_host_route(
    cloud, capsys, monkeypatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table on one line per subnet
    tenant_subnet = subnet(cloud)
    expect_stack(cloud)
    expect_subnet_by_name(cloud, tenant_subnet)
    expect_router_ports(cloud)  # no port on the tenant subnet yet
    expect_gateway_lookup(cloud, [tenant_gateway_port(cloud)])
    new_port = port(
        cloud,
        NEW_PORT_ID,
        "",
        "",
        [(SUBNET_ID, NEW_PORT_IP)],
        name="dupstack-backup-app-subnet",
        status="DOWN",
    )
    cloud.register(
        {
            "method": "POST",
            "uri": cloud.url("network", "ports"),
            "status_code": 201,
            "body": {
                "port": {
                    "network_id": NETWORK_ID,
                    "fixed_ips": [{"subnet_id": SUBNET_ID}],
                    "name": "dupstack-backup-app-subnet",
                    "description": "dupstack: backup router of stack backup",
                }
            },
            "json": {"port": new_port},
        },
        {
            "method": "PUT",
            "uri": cloud.url("network", "routers", ROUTER_ID, "add_router_interface"),
            "body": {"port_id": NEW_PORT_ID},
            "json": {
                "id": ROUTER_ID,
                "tenant_id": cloud.project_id,
                "project_id": cloud.project_id,
                "port_id": NEW_PORT_ID,
                "subnet_id": SUBNET_ID,
                "subnet_ids": [SUBNET_ID],
                "network_id": NETWORK_ID,
            },
        },
        {
            "method": "PUT",
            "uri": cloud.url("network", "subnets", SUBNET_ID),
            # The tenant's own routes stay; the route to the backup subnet is added.
            "body": {"subnet": {"host_routes": [VPN_ROUTE, BACKUP_ROUTE]}},
            "json": {"subnet": {**tenant_subnet, "host_routes": [VPN_ROUTE, BACKUP_ROUTE]}},
        },
    )
    expect_rules(cloud, ssh_rule(cloud, "203.0.113.7/32", "0d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"))
    expect_rule_created(cloud)

    code, out, err = run_cli([*CONNECT, "app-subnet"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert "app-subnet" in out
    assert "router joined through new port 10.0.0.57" in out
    assert "host route 192.168.254.0/24 via 10.0.0.57" in out
    assert "SSH allowed from 10.0.0.0/24" in out
    assert "next DHCP renewal" in out
    assert "192.168.254.10" in out  # the server address from the stack outputs


def test_gateway_free_router_takes_it_without_host_route(cloud, capsys) -> None:
    tenant_subnet = subnet(cloud, host_routes=[])
    expect_stack(cloud)
    expect_subnet_by_name(cloud, tenant_subnet)
    expect_router_ports(cloud)
    expect_gateway_lookup(cloud, [])  # nobody holds 10.0.0.1
    cloud.register(
        {
            "method": "PUT",
            "uri": cloud.url("network", "routers", ROUTER_ID, "add_router_interface"),
            "body": {"subnet_id": SUBNET_ID},
            "json": {
                "id": ROUTER_ID,
                "tenant_id": cloud.project_id,
                "project_id": cloud.project_id,
                "port_id": NEW_PORT_ID,
                "subnet_id": SUBNET_ID,
                "subnet_ids": [SUBNET_ID],
                "network_id": NETWORK_ID,
            },
        }
    )
    # Neutron gave the router the gateway IP: the port shows up among the router's ports.
    expect_router_ports(cloud, our_port(cloud, ip="10.0.0.1"))
    expect_rules(cloud)
    expect_rule_created(cloud)

    code, out, err = run_cli([*CONNECT, "app-subnet", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert not [r for r in cloud.requests() if "/subnets/" in r.url and r.method == "PUT"]
    assert json.loads(out) == [
        {
            "subnet": "app-subnet",
            "cidr": "10.0.0.0/24",
            "via": "10.0.0.1",
            "route": False,
            "changes": ["router took the free gateway 10.0.0.1", "SSH allowed from 10.0.0.0/24"],
        }
    ]


@pytest.mark.parametrize(
    ("cidr", "gateway"), [("192.168.254.128/25", "192.168.254.129"), ("192.168.0.0/16", None)]
)
def test_overlapping_subnet_is_refused_before_any_write(cloud, capsys, cidr, gateway) -> None:
    expect_stack(cloud)
    expect_subnet_by_name(cloud, subnet(cloud, cidr=cidr, gateway_ip=gateway))

    code, out, err = run_cli([*CONNECT, "app-subnet"], capsys)

    assert code == 2
    assert f"error: subnet app-subnet ({cidr}) overlaps the backup subnet ({BACKUP_CIDR})" in err
    assert "hint: recreate the backup stack with a --subnet-cidr that no tenant subnet uses" in err
    assert out == ""
    cloud.assert_calls()
    writes = [
        f"{r.method} {r.url}"
        for r in cloud.mocker.request_history
        if r.method in ("POST", "PUT", "PATCH", "DELETE") and "/auth/tokens" not in r.url
    ]
    assert writes == []


def test_already_connected_changes_nothing(cloud, capsys) -> None:
    connected = subnet(cloud, host_routes=[VPN_ROUTE, BACKUP_ROUTE])
    expect_stack(cloud)
    expect_subnet_by_name(cloud, connected)
    expect_router_ports(cloud, our_port(cloud))
    expect_rules(cloud, ssh_rule(cloud, "10.0.0.0/24"))

    code, out, err = run_cli([*CONNECT, "app-subnet", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.writes() == []
    assert json.loads(out) == [
        {
            "subnet": "app-subnet",
            "cidr": "10.0.0.0/24",
            "via": NEW_PORT_IP,
            "route": True,
            "changes": [],
        }
    ]


def test_attach_subnet_by_id_with_a_real_connection(cloud) -> None:
    """subnets.attach_subnet directly; the subnet given by ID is fetched at once."""
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets", SUBNET_ID),
            "json": {"subnet": subnet(cloud, host_routes=[BACKUP_ROUTE])},
        }
    )
    expect_router_ports(cloud, our_port(cloud))
    expect_rules(cloud)  # the SSH rule went missing: only it is restored
    expect_rule_created(cloud)
    side = subnets.BackupSide(STACK, ROUTER_ID, BACKUP_CIDR, SECURITY_GROUP_ID)

    result = subnets.attach_subnet(cloud.connection(), side, SUBNET_ID)

    assert result == subnets.Connection(
        "app-subnet", "10.0.0.0/24", NEW_PORT_IP, True, ("SSH allowed from 10.0.0.0/24",)
    )
    cloud.assert_calls()


# --- detach -----------------------------------------------------------------------------


def test_remove_undoes_route_interface_and_rule(cloud, capsys) -> None:
    connected = subnet(cloud, host_routes=[VPN_ROUTE, BACKUP_ROUTE])
    expect_stack(cloud)
    expect_subnet_by_name(cloud, connected)
    expect_router_ports(cloud, our_port(cloud))
    cloud.register(
        {
            "method": "PUT",
            "uri": cloud.url("network", "subnets", SUBNET_ID),
            "body": {"subnet": {"host_routes": [VPN_ROUTE]}},
            "json": {"subnet": {**connected, "host_routes": [VPN_ROUTE]}},
        },
        {
            "method": "PUT",
            "uri": cloud.url("network", "routers", ROUTER_ID, "remove_router_interface"),
            "body": {"port_id": NEW_PORT_ID},
            "json": {
                "id": ROUTER_ID,
                "tenant_id": cloud.project_id,
                "project_id": cloud.project_id,
                "port_id": NEW_PORT_ID,
                "subnet_id": SUBNET_ID,
                "subnet_ids": [SUBNET_ID],
                "network_id": NETWORK_ID,
            },
        },
    )
    expect_rules(cloud, ssh_rule(cloud, "10.0.0.0/24"))
    cloud.register(
        {
            "method": "DELETE",
            "uri": cloud.url("network", "security-group-rules", RULE_ID),
            "status_code": 204,
        }
    )

    code, out, err = run_cli([*CONNECT, "app-subnet", "--remove", "--json"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert json.loads(out) == [
        {
            "subnet": "app-subnet",
            "cidr": "10.0.0.0/24",
            "via": NEW_PORT_IP,
            "route": False,
            "changes": [
                "host route 192.168.254.0/24 via 10.0.0.57 removed",
                "router left the subnet (10.0.0.57)",
                "SSH from 10.0.0.0/24 no longer allowed",
            ],
        }
    ]


def test_remove_when_not_connected_changes_nothing(cloud, capsys) -> None:
    expect_stack(cloud)
    expect_subnet_by_name(cloud, subnet(cloud))
    expect_router_ports(cloud)
    expect_rules(cloud, ssh_rule(cloud, "203.0.113.7/32"))

    code, out, err = run_cli([*CONNECT, "app-subnet", "--remove"], capsys)

    assert code == 0, err
    cloud.assert_calls()
    assert cloud.writes() == []
    assert "none" in out


# --- errors -----------------------------------------------------------------------------


def test_unknown_subnet_exit_3_lists_existing_subnets(cloud, capsys) -> None:
    expect_stack(cloud)
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets", "app-subnt"),
            **cloud.not_found("network", "Subnet app-subnt could not be found."),
        },
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets", name="app-subnt"),
            "json": {"subnets": []},
        },
        {
            "method": "GET",
            "uri": cloud.url("network", "subnets"),
            "json": {
                "subnets": [
                    subnet(cloud),
                    subnet(
                        cloud,
                        id="0f9e8d7c-6b5a-4f3e-8d2c-1b0a9f8e7d6c",
                        name="db-subnet",
                        cidr="10.0.1.0/24",
                        gateway_ip="10.0.1.1",
                    ),
                    subnet(
                        cloud,
                        id=BACKUP_SUBNET_ID,
                        name="",
                        cidr=BACKUP_CIDR,
                        gateway_ip="192.168.254.1",
                    ),
                ]
            },
        },
    )

    code, out, err = run_cli([*CONNECT, "app-subnt"], capsys)

    assert code == 3
    assert (
        "error: subnet 'app-subnt' not found; existing: app-subnet (10.0.0.0/24), "
        f"{BACKUP_SUBNET_ID} ({BACKUP_CIDR}), db-subnet (10.0.1.0/24)"
    ) in err
    assert "hint: give a subnet name or ID from `openstack subnet list`" in err
    assert out == ""
    cloud.assert_calls()
    assert cloud.writes() == []


def test_stack_without_outputs_yet_is_a_usage_error(cloud, capsys) -> None:
    creating = stack_body(cloud)
    creating["stack"].update(stack_status="CREATE_IN_PROGRESS", outputs=[])
    expect_stack(cloud, creating)

    code, _out, err = run_cli([*CONNECT, "app-subnet"], capsys)

    assert code == 2
    assert "error: stack backup has no router_id, subnet_cidr, security_group_id output yet" in err
    assert "hint: wait until `stack-status backup` says CREATE_COMPLETE" in err
    cloud.assert_calls()
    assert cloud.writes() == []


def expect_stack(cloud, body: dict[str, Any] | None = None) -> None:
    heat_api.expect_stack(cloud, body or stack_body(cloud))
