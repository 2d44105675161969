"""Heat plugin: a pretend Nova/Neutron/Cinder/Glance for localcloud.

Loaded by the real Heat engine through ``plugin_dirs``. It provides:

* ``LocalCloud::<Service>::<Type>`` stand-ins for every ``OS::Nova::*``,
  ``OS::Neutron::*``, ``OS::Cinder::*`` and ``OS::Glance::*`` resource type.
  Each stand-in carries the real type's property and attribute schemas (so Heat
  validates templates exactly as it would against a real cloud) but keeps its
  "cloud objects" as records in a JSON file instead of calling a service. The
  environment ``localcloud/env/environment.yaml`` maps ``OS::*`` onto them.
* Lookup constraints (``nova.keypair``, ``glance.image``, ``neutron.network``,
  ``cinder.volume``...) answered from that same record store, seeded from
  ``catalogue.yaml``; an unknown name fails like the real one.

Environment: ``LOCALCLOUD_CATALOGUE`` (seed YAML) and ``LOCALCLOUD_STATE``
(JSON record store, rewritten on every change); both optional.
"""

from __future__ import annotations

import copy
import importlib
import ipaddress
import json
import os
import pkgutil
import threading
import uuid
from collections.abc import Callable
from typing import Any

import yaml
from heat.common import exception
from heat.engine import constraints, resource, support

_HERE = os.path.dirname(os.path.abspath(__file__))
_SERVICES = ("nova", "neutron", "cinder", "glance")
FLOATING_POOL = ipaddress.ip_network("203.0.113.0/24")
FIRST_HOST = 10  # floating IPs and fixed IPs start at .10
FIRST_GATEWAY = 200  # router gateways at .200 and up

Record = dict[str, Any]


class _Store:
    """Thread-safe record store: ``{kind: {id: record}}`` persisted as JSON."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.path = os.environ.get("LOCALCLOUD_STATE")
        self.data: dict[str, dict[str, Record]] = {}
        if self.path and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.data = json.load(f)
        else:
            seed = os.environ.get("LOCALCLOUD_CATALOGUE") or os.path.join(
                _HERE, os.pardir, "catalogue.yaml"
            )
            with open(seed, encoding="utf-8") as f:
                for kind, records in (yaml.safe_load(f) or {}).items():
                    self.data[kind] = {r["id"]: r for r in records}
            self.data.setdefault("_counters", {})
            self._save()

    def _save(self) -> None:
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def find(self, kind: str, name_or_id: str) -> Record | None:
        """The record whose ID or (unique) name is ``name_or_id``."""
        with self.lock:
            records = self.data.get(kind, {})
            if name_or_id in records:
                return copy.deepcopy(records[name_or_id])
            named = [r for r in records.values() if r.get("name") == name_or_id]
            return copy.deepcopy(named[0]) if len(named) == 1 else None

    def get(self, kind: str, rid: str | None) -> Record | None:
        with self.lock:
            rec = self.data.get(kind, {}).get(rid or "")
            return copy.deepcopy(rec) if rec else None

    def put(self, kind: str, record: Record) -> None:
        with self.lock:
            self.data.setdefault(kind, {})[record["id"]] = record
            self._save()

    def update(self, kind: str, rid: str, fn: Callable[[Record], None]) -> None:
        with self.lock:
            rec = self.data.get(kind, {}).get(rid)
            if rec is not None:
                fn(rec)
                self._save()

    def delete(self, kind: str, rid: str | None) -> Record | None:
        with self.lock:
            rec = self.data.get(kind, {}).pop(rid or "", None)
            self._save()
            return rec

    def counter(self, name: str) -> int:
        with self.lock:
            counters = self.data.setdefault("_counters", {})
            counters[name] = counters.get(name, 0) + 1
            self._save()
            return counters[name]


_store: _Store | None = None
_store_lock = threading.Lock()


def store() -> _Store:
    """The process-wide record store (created on first use)."""
    global _store
    with _store_lock:
        if _store is None:
            _store = _Store()
        return _store


# --------------------------------------------------------------------------- lookups


class _Lookup(constraints.BaseCustomConstraint):
    """Name-or-ID lookup of a record kind, instead of asking a service."""

    kind = ""
    entity = ""
    expected_exceptions = (exception.EntityNotFound,)

    def validate_with_client(self, client: Any, value: str) -> None:
        if value and store().find(self.kind, value) is None:
            raise exception.EntityNotFound(entity=self.entity, name=value)


def _lookup(kind: str, entity: str) -> type[_Lookup]:
    return type(f"{entity.replace(' ', '')}Lookup", (_Lookup,), {"kind": kind, "entity": entity})


# Same entity names as Heat's own client plugins, so messages read the same.
_LOOKUPS = {
    "nova.keypair": ("keypairs", "Key"),
    "nova.flavor": ("flavors", "Flavor"),
    "nova.server": ("servers", "Server"),
    "glance.image": ("images", "Image"),
    "neutron.network": ("networks", "network"),
    "neutron.subnet": ("subnets", "subnet"),
    "neutron.port": ("ports", "port"),
    "neutron.router": ("routers", "router"),
    "neutron.security_group": ("security_groups", "security_group"),
    "neutron.subnetpool": ("subnetpools", "subnetpool"),
    "neutron.qos_policy": ("qos_policies", "policy"),
    "neutron.address_scope": ("address_scopes", "address_scope"),
    "neutron.segment": ("segments", "segment"),
    "cinder.volume": ("volumes", "Volume"),
    "cinder.vtype": ("volume_types", "VolumeType"),
    "cinder.snapshot": ("volume_snapshots", "VolumeSnapshot"),
    "cinder.backup": ("volume_backups", "Volume backup"),
    "cinder.qos_specs": ("qos_specs", "QoSSpecs"),
}


def constraint_mapping() -> dict[str, type[_Lookup]]:
    """Heat plugin hook: override the service-backed constraints."""
    return {name: _lookup(kind, entity) for name, (kind, entity) in _LOOKUPS.items()}


# ------------------------------------------------------------------------ stand-ins


def _host(cidr: str, index: int) -> str:
    return str(ipaddress.ip_network(cidr, strict=False)[index])


def _new_id() -> str:
    return str(uuid.uuid4())


class StandIn(resource.Resource):
    """Base of the stand-ins: real schemas, records instead of API calls."""

    real_type = ""
    kind = ""

    # ---- hooks for the record of one type
    def build(self, rec: Record) -> None:
        """Fill in the record at create time (ID, name already set)."""

    def release(self, rec: Record) -> None:
        """Undo side effects on other records at delete time."""

    # ---- Heat resource API
    def prop(self, key: str, default: Any = None) -> Any:
        """A property value, or ``default`` when unset/unknown."""
        if key not in self.properties.props:
            return default
        value = self.properties[key]
        return default if value is None else value

    def handle_create(self) -> None:
        rec: Record = {
            "id": _new_id(),
            "name": self.prop("name") or self.physical_resource_name(),
            "status": "ACTIVE",
            "tenant_id": self.context.project_id,
            "project_id": self.context.project_id,
            "stack_id": self.stack.id,
        }
        self.build(rec)
        store().put(self.kind, rec)
        self.resource_id_set(rec["id"])

    def handle_update(self, json_snippet: Any, tmpl_diff: Any, prop_diff: dict[str, Any]) -> None:
        """In-place update of what the real type updates in place (the schema's
        ``update_allowed``; anything else Heat already turned into a replacement)."""
        changes = {k: copy.deepcopy(v) for k, v in prop_diff.items() if v is not None}
        store().update(self.kind, self.resource_id, lambda rec: rec.update(changes))

    def handle_delete(self) -> None:
        rec = store().delete(self.kind, self.resource_id)
        if rec is not None:
            self.release(rec)

    def record(self) -> Record:
        return store().get(self.kind, self.resource_id) or {}

    def _show_resource(self) -> Record | None:
        return self.record() or None

    def _resolve_attribute(self, name: str) -> Any:
        return self.record().get(name)

    def handle_check(self) -> None:
        if not self.record():
            raise exception.EntityNotFound(entity=self.real_type, name=self.resource_id)


class Net(StandIn):
    def build(self, rec: Record) -> None:
        rec.update(
            admin_state_up=self.prop("admin_state_up", True),
            mtu=1450,
            subnets=[],
            shared=self.prop("shared", False),
            port_security_enabled=self.prop("port_security_enabled", True),
            qos_policy_id=None,
            segments=[],
            l2_adjacency=True,
        )


class Subnet(StandIn):
    def build(self, rec: Record) -> None:
        net = store().find("networks", self.prop("network"))
        cidr = self.prop("cidr") or "10.0.0.0/24"
        net_obj = ipaddress.ip_network(cidr, strict=False)
        rec.update(
            network_id=net["id"] if net else self.prop("network"),
            cidr=str(net_obj),
            ip_version=self.prop("ip_version", net_obj.version),
            gateway_ip=self.prop("gateway_ip") or _host(cidr, 1),
            enable_dhcp=self.prop("enable_dhcp", True),
            dns_nameservers=self.prop("dns_nameservers", []),
            host_routes=self.prop("host_routes", []),
            allocation_pools=self.prop("allocation_pools")
            or [{"start": _host(cidr, 2), "end": _host(cidr, -2)}],
        )
        if net:
            store().update("networks", net["id"], lambda n: n["subnets"].append(rec["id"]))

    def release(self, rec: Record) -> None:
        def drop(net: Record) -> None:
            net["subnets"] = [s for s in net.get("subnets", []) if s != rec["id"]]

        store().update("networks", rec["network_id"], drop)


def _floating_address(counter: str = "floating_ip", first: int = FIRST_HOST) -> str:
    return str(FLOATING_POOL[first - 1 + store().counter(counter)])


class Router(StandIn):
    def build(self, rec: Record) -> None:
        gateway = self.prop("external_gateway_info")
        info = None
        if gateway:
            net = store().find("networks", gateway["network"]) or {"id": gateway["network"]}
            info = {
                "network_id": net["id"],
                "enable_snat": gateway.get("enable_snat", True),
                "external_fixed_ips": [
                    {"ip_address": _floating_address("router_gateway", FIRST_GATEWAY)}
                ],
            }
        rec.update(
            admin_state_up=self.prop("admin_state_up", True),
            external_gateway_info=info,
            interfaces=[],
        )


class RouterInterface(StandIn):
    def build(self, rec: Record) -> None:
        router = store().find("routers", self.prop("router")) or {"id": self.prop("router")}
        subnet = store().find("subnets", self.prop("subnet") or "")
        rec.update(router_id=router["id"], subnet_id=subnet["id"] if subnet else None)
        rec["port_id"] = self.prop("port")
        store().update("routers", router["id"], lambda r: r["interfaces"].append(rec["id"]))

    def release(self, rec: Record) -> None:
        def drop(router: Record) -> None:
            router["interfaces"] = [i for i in router["interfaces"] if i != rec["id"]]

        store().update("routers", rec["router_id"], drop)


class SecurityGroup(StandIn):
    def build(self, rec: Record) -> None:
        rec.update(
            description=self.prop("description", ""),
            rules=copy.deepcopy(self.prop("rules", [])),
            stateful=self.prop("stateful", True),
        )


def _allocate(subnet: Record) -> str:
    index = FIRST_HOST - 1 + store().counter(f"subnet:{subnet['id']}")
    return _host(subnet["cidr"], index)


class Port(StandIn):
    def build(self, rec: Record) -> None:
        net = store().find("networks", self.prop("network")) or {"id": self.prop("network")}
        fixed_ips = []
        wanted = self.prop("fixed_ips") or [{}]
        for item in wanted:
            subnet = store().find("subnets", item.get("subnet") or "")
            if subnet is None and net.get("subnets"):
                subnet = store().get("subnets", net["subnets"][0])
            if subnet is None:
                continue
            address = item.get("ip_address") or _allocate(subnet)
            fixed_ips.append({"ip_address": address, "subnet_id": subnet["id"]})
        groups = [
            (store().find("security_groups", g) or {"id": g})["id"]
            for g in self.prop("security_groups", [])
        ]
        counter = store().counter("mac")
        rec.update(
            network_id=net["id"],
            network=copy.deepcopy(net),
            fixed_ips=fixed_ips,
            subnets=[store().get("subnets", f["subnet_id"]) for f in fixed_ips],
            mac_address=f"fa:16:3e:00:{counter >> 8 & 0xFF:02x}:{counter & 0xFF:02x}",
            security_groups=groups,
            admin_state_up=self.prop("admin_state_up", True),
            device_id=self.prop("device_id", ""),
            device_owner=self.prop("device_owner", ""),
            allowed_address_pairs=self.prop("allowed_address_pairs", []),
            port_security_enabled=self.prop("port_security_enabled", True),
            dns_assignment=[],
            qos_policy_id=None,
            propagate_uplink_status=self.prop("propagate_uplink_status", False),
        )


class FloatingIP(StandIn):
    def build(self, rec: Record) -> None:
        net = store().find("networks", self.prop("floating_network")) or {}
        rec.update(
            floating_ip_address=self.prop("floating_ip_address") or _floating_address(),
            floating_network_id=net.get("id", self.prop("floating_network")),
            port_id=self.prop("port_id"),
            fixed_ip_address=self.prop("fixed_ip_address"),
            router_id=None,
        )
        rec["name"] = rec["floating_ip_address"]


class FloatingIPAssociation(StandIn):
    def build(self, rec: Record) -> None:
        port = store().find("ports", self.prop("port_id")) or {}
        fixed = self.prop("fixed_ip_address") or next(
            (f["ip_address"] for f in port.get("fixed_ips", [])), None
        )
        rec.update(floatingip_id=self.prop("floatingip_id"), port_id=port.get("id"))

        def associate(fip: Record) -> None:
            fip.update(port_id=port.get("id"), fixed_ip_address=fixed)

        store().update("floating_ips", rec["floatingip_id"], associate)

    def release(self, rec: Record) -> None:
        def dissociate(fip: Record) -> None:
            fip.update(port_id=None, fixed_ip_address=None)

        store().update("floating_ips", rec["floatingip_id"], dissociate)


class Volume(StandIn):
    def build(self, rec: Record) -> None:
        vtype = store().find("volume_types", self.prop("volume_type") or "__DEFAULT__")
        rec.update(
            status="available",
            size=self.prop("size", 1),
            volume_type=vtype["name"] if vtype else self.prop("volume_type"),
            description=self.prop("description", ""),
            display_name=rec["name"],
            display_description=self.prop("description", ""),
            metadata=self.prop("metadata", {}),
            metadata_values=self.prop("metadata", {}),
            availability_zone=self.prop("availability_zone", "nova"),
            bootable=False,
            encrypted=False,
            multiattach=False,
            snapshot_id=self.prop("snapshot_id"),
            source_volid=self.prop("source_volid"),
            attachments=[],
            attachments_list=[],
            created_at="1970-01-01T00:00:00.000000",
        )


class VolumeAttachment(StandIn):
    def build(self, rec: Record) -> None:
        volume = store().find("volumes", self.prop("volume_id")) or {"id": self.prop("volume_id")}
        if volume.get("status") == "in-use" and not volume.get("multiattach"):
            raise exception.Error(
                f"Invalid volume: Volume {volume['id']} status must be available to reserve, "
                "but the current status is in-use."
            )
        attachment = {
            "id": rec["id"],
            "server_id": self.prop("instance_uuid"),
            "volume_id": volume["id"],
            "device": self.prop("mountpoint") or "/dev/vdb",
        }
        rec.update(attachment)

        def attach(vol: Record) -> None:
            vol["attachments"].append(attachment)
            vol["attachments_list"] = vol["attachments"]
            vol["status"] = "in-use"

        store().update("volumes", volume["id"], attach)

    def release(self, rec: Record) -> None:
        def detach(vol: Record) -> None:
            vol["attachments"] = [a for a in vol["attachments"] if a["id"] != rec["id"]]
            vol["attachments_list"] = vol["attachments"]
            vol["status"] = "in-use" if vol["attachments"] else "available"

        store().update("volumes", rec["volume_id"], detach)


class Server(StandIn):
    def build(self, rec: Record) -> None:
        addresses: dict[str, list[dict[str, Any]]] = {}
        for item in self.prop("networks", []):
            port = store().find("ports", item.get("port") or "")
            if port is None:
                net = store().find("networks", item.get("network") or "")
                if net is None or not net.get("subnets"):
                    continue
                subnet = store().get("subnets", net["subnets"][0]) or {}
                port = {
                    "network": net,
                    "mac_address": "fa:16:3e:ff:ff:ff",
                    "fixed_ips": [{"ip_address": _allocate(subnet)}],
                }
            else:
                store().update("ports", port["id"], lambda p: p.update(device_id=rec["id"]))
            for fixed in port["fixed_ips"]:
                addresses.setdefault(port["network"].get("name", port["network"]["id"]), []).append(
                    {
                        "addr": fixed["ip_address"],
                        "version": ipaddress.ip_address(fixed["ip_address"]).version,
                        "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                    }
                )
        flavor = store().find("flavors", self.prop("flavor")) or {}
        image = store().find("images", self.prop("image", "")) or {}
        first = next((a["addr"] for addrs in addresses.values() for a in addrs), "")
        rec.update(
            addresses=addresses,
            networks={net: [a["addr"] for a in addrs] for net, addrs in addresses.items()},
            first_address=first,
            accessIPv4=first,
            accessIPv6="",
            instance_name=f"instance-{store().counter('server'):08x}",
            console_urls={},
            os_collect_config={},
            tags=self.prop("tags", []),
            key_name=self.prop("key_name"),
            flavor={"id": flavor.get("id"), "original_name": flavor.get("name")},
            image={"id": image.get("id")},
            metadata=self.prop("metadata", {}),
            user_data_bytes=len((self.prop("user_data") or "").encode()),
        )


_BEHAVIOUR: dict[str, tuple[str, type[StandIn]]] = {
    "OS::Neutron::Net": ("networks", Net),
    "OS::Neutron::Subnet": ("subnets", Subnet),
    "OS::Neutron::Router": ("routers", Router),
    "OS::Neutron::RouterInterface": ("router_interfaces", RouterInterface),
    "OS::Neutron::SecurityGroup": ("security_groups", SecurityGroup),
    "OS::Neutron::Port": ("ports", Port),
    "OS::Neutron::FloatingIP": ("floating_ips", FloatingIP),
    "OS::Neutron::FloatingIPAssociation": ("floating_ip_associations", FloatingIPAssociation),
    "OS::Cinder::Volume": ("volumes", Volume),
    "OS::Cinder::VolumeAttachment": ("volume_attachments", VolumeAttachment),
    "OS::Nova::Server": ("servers", Server),
    "OS::Nova::KeyPair": ("keypairs", StandIn),
    "OS::Nova::Flavor": ("flavors", StandIn),
    "OS::Glance::WebImage": ("images", StandIn),
    "OS::Glance::Image": ("images", StandIn),
    "OS::Cinder::VolumeType": ("volume_types", StandIn),
}


def _real_types() -> dict[str, type[resource.Resource]]:
    """Every resource type Heat implements for the four stood-in services."""
    found: dict[str, type[resource.Resource]] = {}
    for service in _SERVICES:
        package = importlib.import_module(f"heat.engine.resources.openstack.{service}")
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for hook in ("available_resource_mapping", "resource_mapping"):
                if hasattr(module, hook):
                    found.update(getattr(module, hook)())
                    break
    return {
        name: cls
        for name, cls in found.items()
        if name.startswith("OS::")
        and name.split("::")[1].lower() in _SERVICES
        and cls.support_status.status != support.HIDDEN
    }


def _standin_class(real_type: str, real: type[resource.Resource]) -> type[StandIn]:
    kind, base = _BEHAVIOUR.get(real_type, (real_type, StandIn))
    return type(
        "LocalCloud" + real_type.replace("OS::", "").replace("::", ""),
        (base,),
        {
            "__doc__": f"Stand-in for {real_type} (localcloud, no service behind it).",
            "real_type": real_type,
            "kind": kind,
            "properties_schema": dict(real.properties_schema),
            "attributes_schema": dict(real.attributes_schema),
            "support_status": real.support_status,
        },
    )


def resource_mapping() -> dict[str, type[StandIn]]:
    """Heat plugin hook: ``LocalCloud::Nova::Server`` etc."""
    return {
        "LocalCloud::" + name.removeprefix("OS::"): _standin_class(name, cls)
        for name, cls in _real_types().items()
    }
