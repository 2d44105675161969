"""Attach tenant subnets to the backup router so tenant servers and the backup server meet.

When the subnet's gateway IP is free, the router takes it (plain router-interface-add).
In the usual case the tenant's own router holds the gateway IP: the backup router then
joins through a new port on the subnet, and the subnet gets a host route (pushed to the
tenant servers by DHCP) sending the backup subnet through that port. Either way the backup
server's security group gets SSH from the subnet's CIDR. Every step is idempotent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from openstack import connection
from openstack import exceptions as sdk_exc

from provisioner.cloud import cloud_errors
from provisioner.errors import NotFound, UsageError

PORT_PREFIX = "dupstack"
# Neutron's device owners of router interfaces: legacy, DVR and L3-HA routers.
ROUTER_INTERFACE_OWNERS = (
    "network:router_interface",
    "network:router_interface_distributed",
    "network:ha_router_replicated_interface",
)


@dataclass(frozen=True)
class BackupSide:
    """What stack-connect needs of the backup stack (from its outputs)."""

    stack: str
    router_id: str
    subnet_cidr: str
    security_group_id: str


@dataclass(frozen=True)
class Connection:
    """How one tenant subnet reaches the backup subnet, and what changed to get there."""

    subnet: str
    cidr: str
    via: str
    route: bool
    changes: tuple[str, ...]


def backup_side(stack: str, outputs: dict[str, Any]) -> BackupSide:
    """The backup side from the stack outputs; a clear error if the stack is not ready."""
    missing = [k for k in ("router_id", "subnet_cidr", "security_group_id") if not outputs.get(k)]
    if missing:
        raise UsageError(
            f"stack {stack} has no {', '.join(missing)} output yet",
            f"wait until `stack-status {stack}` says CREATE_COMPLETE",
        )
    return BackupSide(
        stack, outputs["router_id"], outputs["subnet_cidr"], outputs["security_group_id"]
    )


def check_no_overlap(subnet_name: str, cidr: str, backup_cidr: str) -> None:
    """Refuse a tenant subnet whose addresses overlap the backup subnet."""
    tenant = ipaddress.ip_network(cidr, strict=False)
    backup = ipaddress.ip_network(backup_cidr, strict=False)
    if tenant.version != backup.version:
        raise UsageError(
            f"subnet {subnet_name} is IPv{tenant.version}; "
            f"the backup subnet is IPv{backup.version}",
            "connect an IPv4 subnet of the same network",
        )
    if tenant.overlaps(backup):
        raise UsageError(
            f"subnet {subnet_name} ({cidr}) overlaps the backup subnet ({backup_cidr})",
            "recreate the backup stack with a --subnet-cidr that no tenant subnet uses",
        )


def route_to(backup_cidr: str, nexthop: str) -> dict[str, str]:
    """The host route that sends the backup subnet through the backup router's port."""
    return {"destination": backup_cidr, "nexthop": nexthop}


def routes_with(routes: list[dict[str, str]], route: dict[str, str]) -> list[dict[str, str]] | None:
    """`routes` with `route` as the only one to its destination; None when nothing changes."""
    plain = [{"destination": r["destination"], "nexthop": r["nexthop"]} for r in routes]
    if route in plain:
        return None
    return [r for r in plain if r["destination"] != route["destination"]] + [route]


def routes_without(
    routes: list[dict[str, str]], route: dict[str, str]
) -> list[dict[str, str]] | None:
    """`routes` less `route`, or None when it is not there."""
    plain = [{"destination": r["destination"], "nexthop": r["nexthop"]} for r in routes]
    return [r for r in plain if r != route] if route in plain else None


def find_subnet(conn: connection.Connection, name_or_id: str) -> Any:
    """The tenant subnet, or NotFound listing the subnets that exist."""
    with cloud_errors(f"looking up subnet {name_or_id}"):
        try:
            subnet = conn.network.find_subnet(name_or_id, ignore_missing=False)
        except sdk_exc.NotFoundException:
            names = sorted(f"{s.name or s.id} ({s.cidr})" for s in conn.network.subnets())
            raise NotFound(
                f"subnet {name_or_id!r} not found; existing: {', '.join(names) or 'none'}",
                "give a subnet name or ID from `openstack subnet list`",
            ) from None
    return subnet


def _interface_port(conn: connection.Connection, router_id: str, subnet_id: str) -> Any:
    """The backup router's port on the subnet, if it has one."""
    for port in conn.network.ports(device_id=router_id):
        if any(ip.get("subnet_id") == subnet_id for ip in port.fixed_ips or []):
            return port
    return None


def _ip_on(port: Any, subnet_id: str) -> str:
    return next(ip["ip_address"] for ip in port.fixed_ips if ip.get("subnet_id") == subnet_id)


def _gateway_taken(conn: connection.Connection, subnet: Any) -> bool:
    if not subnet.gateway_ip:
        return True
    ports = conn.network.ports(
        network_id=subnet.network_id,
        fixed_ips=[f"subnet_id={subnet.id}", f"ip_address={subnet.gateway_ip}"],
    )
    return any(True for _ in ports)


def _ssh_rules(conn: connection.Connection, side: BackupSide, cidr: str) -> list[Any]:
    return [
        rule
        for rule in conn.network.security_group_rules(
            security_group_id=side.security_group_id, direction="ingress", protocol="tcp"
        )
        if rule.remote_ip_prefix == cidr and rule.port_range_min == 22
    ]


def connected_subnets(conn: connection.Connection, side: BackupSide, own_subnet: str) -> list[str]:
    """IDs of the tenant subnets stack-connect attached to the backup router."""
    with cloud_errors(f"listing the interfaces of the backup router {side.router_id}"):
        return sorted(
            {
                ip["subnet_id"]
                for port in conn.network.ports(device_id=side.router_id)
                if port.device_owner in ROUTER_INTERFACE_OWNERS
                for ip in port.fixed_ips or []
                if ip.get("subnet_id") != own_subnet
            }
        )


def attach_subnet(conn: connection.Connection, side: BackupSide, name_or_id: str) -> Connection:
    """Connect one tenant subnet to the backup router (idempotent)."""
    subnet = find_subnet(conn, name_or_id)
    label = subnet.name or subnet.id
    check_no_overlap(label, subnet.cidr, side.subnet_cidr)
    changes: list[str] = []
    with cloud_errors(f"connecting subnet {label}"):
        port = _interface_port(conn, side.router_id, subnet.id)
        if port is None:
            if _gateway_taken(conn, subnet):
                port = conn.network.create_port(
                    network_id=subnet.network_id,
                    fixed_ips=[{"subnet_id": subnet.id}],
                    name=f"{PORT_PREFIX}-{side.stack}-{label}",
                    description=f"dupstack: backup router of stack {side.stack}",
                )
                conn.network.add_interface_to_router(side.router_id, port=port.id)
                changes.append(f"router joined through new port {_ip_on(port, subnet.id)}")
            else:
                conn.network.add_interface_to_router(side.router_id, subnet=subnet.id)
                port = _interface_port(conn, side.router_id, subnet.id)
                changes.append(f"router took the free gateway {subnet.gateway_ip}")
        via = _ip_on(port, subnet.id)
        needs_route = via != subnet.gateway_ip
        if needs_route:
            routes = routes_with(subnet.host_routes or [], route_to(side.subnet_cidr, via))
            if routes is not None:
                conn.network.update_subnet(subnet, host_routes=routes)
                changes.append(f"host route {side.subnet_cidr} via {via}")
        if not _ssh_rules(conn, side, subnet.cidr):
            conn.network.create_security_group_rule(
                security_group_id=side.security_group_id,
                direction="ingress",
                ethertype="IPv4",
                protocol="tcp",
                port_range_min=22,
                port_range_max=22,
                remote_ip_prefix=subnet.cidr,
                description=f"dupstack: SSH/SFTP from tenant subnet {label}",
            )
            changes.append(f"SSH allowed from {subnet.cidr}")
    return Connection(label, subnet.cidr, via, needs_route, tuple(changes))


def detach_subnet(conn: connection.Connection, side: BackupSide, name_or_id: str) -> Connection:
    """Undo attach_subnet (idempotent): route, router interface, SSH rule."""
    subnet = find_subnet(conn, name_or_id)
    label = subnet.name or subnet.id
    changes: list[str] = []
    via = ""
    with cloud_errors(f"disconnecting subnet {label}"):
        port = _interface_port(conn, side.router_id, subnet.id)
        if port is not None:
            via = _ip_on(port, subnet.id)
            routes = routes_without(subnet.host_routes or [], route_to(side.subnet_cidr, via))
            if routes is not None:
                conn.network.update_subnet(subnet, host_routes=routes)
                changes.append(f"host route {side.subnet_cidr} via {via} removed")
            conn.network.remove_interface_from_router(side.router_id, port=port.id)
            changes.append(f"router left the subnet ({via})")
        for rule in _ssh_rules(conn, side, subnet.cidr):
            conn.network.delete_security_group_rule(rule, ignore_missing=True)
            changes.append(f"SSH from {subnet.cidr} no longer allowed")
    return Connection(label, subnet.cidr, via, False, tuple(changes))
