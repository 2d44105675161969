"""The committed Heat templates, checked by OpenStack Heat's own validation code.

Heat runs offline (see tests/support/heat_validator.py): only the service catalogue and
the cloud look-ups (key pairs, flavors, images, networks, volumes, volume types) are
replaced by a small fake cloud, so unknown names are rejected as a real cloud would.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from provisioner.render import RESTORE_TEMPLATE, TEMPLATE, load_source, stale_templates

if TYPE_CHECKING:
    from conftest import HeatValidator

VALIDATOR = Path(__file__).resolve().parents[2] / "tests" / "support" / "heat_validator.py"


def _fake_cloud() -> dict[str, frozenset[str]]:
    """The validator's fake catalogue (the module imports Heat only when it serves)."""
    spec = importlib.util.spec_from_file_location("heat_validator", VALIDATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FAKE_CLOUD


FAKE_CLOUD = _fake_cloud()
VOLUME_ID = next(iter(FAKE_CLOUD["cinder.volume"]))

USER_DATA_BUDGET = 16 * 1024  # bytes of base64: dupstack's own bound, far below Nova's 65,535
HEAT_MAX_TEMPLATE_SIZE = 512 * 1024  # bytes, Heat's default max_template_size
TARGET_VERSION = "2018-08-31"

# Valid stack parameters, all known to the fake cloud. The volume type is given
# explicitly here; the default (empty) volume type has its own test.
CREATE_PARAMS: dict[str, Any] = {
    "keypair_name": "demo-key",
    "flavor_name": "m1.small",
    "image": "debian-12",
    "passcode": "correct horse battery staple",
    "ssh_allowed_cidr": "203.0.113.7/32",
    "public_network": "public",
    "volume_type": "ssd",
}
RESTORE_PARAMS: dict[str, Any] = {
    key: value for key, value in CREATE_PARAMS.items() if key != "volume_type"
} | {"volume_id": VOLUME_ID}

TEMPLATES = {"create": TEMPLATE, "restore": RESTORE_TEMPLATE}
PARAMS = {"create": CREATE_PARAMS, "restore": RESTORE_PARAMS}


def _load(kind: str) -> dict[str, Any]:
    return load_source(TEMPLATES[kind])


def _dump(template: dict[str, Any]) -> str:
    return yaml.safe_dump(template, sort_keys=False)


def _walk(node: Any) -> Iterator[Any]:
    """Every node of a parsed template, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["resources"].items()
        if resource["type"] == type_
    }


def _user_data(template: dict[str, Any]) -> dict[str, Any]:
    return template["resources"]["server"]["properties"]["user_data"]["str_replace"]


def _assert_accepted(heat: HeatValidator, text: str, parameters: dict[str, Any]) -> None:
    verdict = heat.validate(text, parameters)
    assert verdict.ok, f"Heat rejected the template: {verdict.error}"


def _assert_rejected(
    heat: HeatValidator, text: str, parameters: dict[str, Any], *expected: str
) -> None:
    verdict = heat.validate(text, parameters)
    assert not verdict.ok, "Heat accepted a broken template"
    for fragment in expected:
        assert fragment.lower() in verdict.error.lower(), (
            f"expected {fragment!r} in Heat's error: {verdict.error}"
        )


# --- Heat accepts the committed templates -----------------------------------------------


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_committed_template_passes_heat_validation(heat: HeatValidator, kind: str) -> None:
    _assert_accepted(heat, TEMPLATES[kind].read_text(), PARAMS[kind])


def test_create_template_accepts_the_default_volume_type(heat: HeatValidator) -> None:
    parameters = {key: value for key, value in CREATE_PARAMS.items() if key != "volume_type"}
    _assert_accepted(heat, TEMPLATE.read_text(), parameters)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("volume_size", 10),
        ("volume_size", 10_000),
        ("passcode", "x" * 12),
        ("passcode", " spaces, 'quotes', #hash: ünïcode "),
        ("package_index", "https://" + "m" * 1016),
        (
            "wheelhouse_url",
            "https://swift.example/v1/AUTH_x/c/w.tar?temp_url_sig=a&temp_url_expires=1",
        ),
    ],
)
def test_parameter_limits_are_inclusive(heat: HeatValidator, name: str, value: Any) -> None:
    _assert_accepted(heat, TEMPLATE.read_text(), CREATE_PARAMS | {name: value})


# --- Heat rejects broken parameters -------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "value", "expected"),
    [
        ("create", "volume_size", 5, "between 10 and 10000"),
        ("create", "volume_size", 20_000, "between 10 and 10000"),
        ("create", "passcode", "x" * 11, "at least 12 characters"),
        ("restore", "passcode", "short", "at least 12 characters"),
        ("create", "passcode", "first line is long\nsecond", "must be one line"),
        ("restore", "passcode", "first line is long\r\n", "must be one line"),
        ("create", "keypair_name", "no-such-key", "nova.keypair"),
        ("create", "flavor_name", "m1.huge", "nova.flavor"),
        ("create", "image", "windows-95", "glance.image"),
        ("create", "public_network", "no-such-net", "neutron.network"),
        ("create", "volume_type", "no-such-type", "cinder.vtype"),
        ("restore", "volume_id", "0" * 36, "cinder.volume"),
        ("create", "ssh_allowed_cidr", "10.0.0.0/33", "invalid net cidr"),
        ("create", "ssh_allowed_cidr", "office", "invalid net cidr"),
        ("create", "backup_subnet_cidr", "192.168.254.0/40", "invalid net cidr"),
        ("create", "ssh_user", "Root!", "POSIX user name"),
        ("create", "agent_sha256", "AB" * 32, "64 lowercase hexadecimal digits"),
        ("restore", "agent_sha256", "", "64 lowercase hexadecimal digits"),
        ("create", "agent_version", "latest", "A release version like 0.2.0"),
        ("create", "package_index", "ftp://mirror/simple", "An http(s) URL"),
        ("create", "package_index", "https://mirror/a b", "An http(s) URL"),
        ("restore", "wheelhouse_url", "file:///tmp/w.tar", "Empty, or an http(s) URL"),
        ("create", "wheelhouse_sha256", "0" * 63, "Empty, or 64 lowercase hexadecimal"),
    ],
)
def test_heat_rejects_invalid_parameter(
    heat: HeatValidator, kind: str, name: str, value: Any, expected: str
) -> None:
    _assert_rejected(
        heat, TEMPLATES[kind].read_text(), PARAMS[kind] | {name: value}, name, expected
    )


def test_heat_requires_the_parameters_without_default(heat: HeatValidator) -> None:
    parameters = {key: value for key, value in CREATE_PARAMS.items() if key != "passcode"}
    _assert_rejected(heat, TEMPLATE.read_text(), parameters, "passcode")


# --- Heat rejects broken templates --------------------------------------------------------


def _old_version(t: dict[str, Any]) -> None:
    t["heat_template_version"] = "2016-02-09"


def _unknown_property(t: dict[str, Any]) -> None:
    t["resources"]["volume_attachment"]["properties"]["bus"] = "virtio"


def _dangling_get_resource(t: dict[str, Any]) -> None:
    t["resources"]["floating_ip_association"]["properties"]["port_id"] = {
        "get_resource": "no_such_port"
    }


def _dangling_get_attr(t: dict[str, Any]) -> None:
    t["outputs"]["floating_ip"]["value"] = {"get_attr": ["no_such_ip", "floating_ip_address"]}


def _bad_protocol(t: dict[str, Any]) -> None:
    t["resources"]["security_group"]["properties"]["rules"][0]["protocol"] = "tcpp"


def _bad_rule_cidr(t: dict[str, Any]) -> None:
    t["resources"]["security_group"]["properties"]["rules"][1]["remote_ip_prefix"] = "0.0.0.0/99"


def _bad_port(t: dict[str, Any]) -> None:
    t["resources"]["security_group"]["properties"]["rules"][0]["port_range_max"] = 70_000


def _get_file(t: dict[str, Any]) -> None:
    _user_data(t)["template"] = {"get_file": "../../cloud-init/user-data.yaml"}


def _unknown_type(t: dict[str, Any]) -> None:
    t["resources"]["router"]["type"] = "OS::Neutron::Routr"


BROKEN: list[tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    (_old_version, ("template version is invalid", "2016-02-09")),
    (_unknown_property, ("volume_attachment", "unknown property bus")),
    (_dangling_get_resource, ("no_such_port", "floating_ip_association")),
    (_dangling_get_attr, ("no_such_ip",)),
    (_bad_protocol, ("security_group", "protocol", "tcpp")),
    (_bad_rule_cidr, ("remote_ip_prefix", "0.0.0.0/99")),
    (_bad_port, ("port_range_max", "70000")),
    (_get_file, ("get_file",)),
    (_unknown_type, ("OS::Neutron::Routr",)),
]


@pytest.mark.parametrize("kind", ["create", "restore"])
@pytest.mark.parametrize(
    ("breakage", "expected"), BROKEN, ids=[breakage.__name__[1:] for breakage, _ in BROKEN]
)
def test_heat_rejects_broken_template(
    heat: HeatValidator,
    kind: str,
    breakage: Callable[[dict[str, Any]], None],
    expected: tuple[str, ...],
) -> None:
    template = copy.deepcopy(_load(kind))
    breakage(template)
    _assert_rejected(heat, _dump(template), PARAMS[kind], *expected)


# --- Self-contained, up to date, within the clouds' size limits --------------------------


def test_templates_are_up_to_date_with_their_sources() -> None:
    stale = stale_templates()
    assert stale == [], (
        f"out of date with heat/src or cloud-init: {[path.name for path in stale]}; "
        "run `make templates` and commit the result"
    )


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_template_is_self_contained(kind: str) -> None:
    template = _load(kind)
    fetching = {
        key
        for node in _walk(template)
        if isinstance(node, dict)
        for key in node
        if re.fullmatch(r"(get_(file|url)|Fn::Get(File|URL)|include|import)", str(key))
    }
    assert not fetching, f"{TEMPLATES[kind].name} fetches other files: {sorted(fetching)}"
    external = {r["type"] for r in template["resources"].values() if "OS::" not in r["type"]}
    assert not external, f"nested templates (not self-contained): {sorted(external)}"
    assert "cloud-config" in _user_data(template)["template"], "user-data is not inlined"


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_template_targets_heat_2018_08_31(kind: str) -> None:
    assert str(_load(kind)["heat_template_version"]) == TARGET_VERSION


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_template_is_under_heat_max_template_size(kind: str) -> None:
    size = TEMPLATES[kind].stat().st_size
    assert size < HEAT_MAX_TEMPLATE_SIZE, f"{size} bytes: Heat refuses templates over 512 KiB"


def test_heat_enforces_the_max_template_size_assumed_here(heat: HeatValidator) -> None:
    text = TEMPLATE.read_text()
    padded = text + "#" * (HEAT_MAX_TEMPLATE_SIZE - len(text) + 1)
    _assert_rejected(heat, padded, CREATE_PARAMS, f"maximum allowed size ({HEAT_MAX_TEMPLATE_SIZE}")


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_user_data_stays_within_its_budget_after_substitution(kind: str) -> None:
    template = _load(kind)
    user_data = _user_data(template)
    text: str = user_data["template"]
    tokens = set(re.findall(r"__DUPSTACK_[A-Z0-9_]+__", text))
    missing = tokens - set(user_data["params"])
    assert not missing, f"user-data tokens that Heat never replaces: {sorted(missing)}"

    # Worst case: the longest value each parameter allows (2 bytes a character in UTF-8).
    def longest(name: str) -> int:
        rules = template["parameters"][name].get("constraints", [])
        return max(rule["length"]["max"] for rule in rules if "length" in rule)

    values = {
        "passcode": "Ä" * longest("passcode"),
        "ssh_user": "u" * 32,
        "agent_version": "9" * longest("agent_version"),
        "agent_sha256": "f" * 64,
        "package_index": "~" * longest("package_index"),  # printable ASCII only
        "wheelhouse_url": "~" * longest("wheelhouse_url"),
        "wheelhouse_sha256": "f" * 64,
        "volume_id": VOLUME_ID,
    }
    for token, param in user_data["params"].items():
        if isinstance(param, dict) and "get_param" in param:
            value = values[param["get_param"]]  # KeyError: a new parameter needs a worst case
        else:
            value = VOLUME_ID if token == "__DUPSTACK_VOLUME_ID__" else str(param)
        text = text.replace(token, value)
    encoded = base64.b64encode(text.encode())
    assert len(encoded) <= USER_DATA_BUDGET, (
        f"user_data is {len(encoded)} bytes in base64; the budget is {USER_DATA_BUDGET}"
    )


# --- The stack's shape ----------------------------------------------------------------------


def test_restore_template_attaches_the_existing_volume() -> None:
    template = _load("restore")
    parameter = template["parameters"]["volume_id"]
    assert parameter["type"] == "string"
    assert {"custom_constraint": "cinder.volume"} in parameter["constraints"]
    assert _resources_of_type(template, "OS::Cinder::Volume") == {}
    assert not any(node == {"get_resource": "volume"} for node in _walk(template))
    attachments = _resources_of_type(template, "OS::Cinder::VolumeAttachment")
    assert [a["properties"]["volume_id"] for a in attachments.values()] == [
        {"get_param": "volume_id"}
    ]
    params = _user_data(template)["params"]
    assert params["__DUPSTACK_MODE__"] == "restore"
    assert params["__DUPSTACK_VOLUME_ID__"] == {"get_param": "volume_id"}
    assert template["outputs"]["volume_id"]["value"] == {"get_param": "volume_id"}
    assert "volume_size" not in template["parameters"]
    assert "volume_type" not in template["parameters"]


def test_create_template_keeps_its_volume_when_the_stack_is_deleted() -> None:
    template = _load("create")
    volumes = _resources_of_type(template, "OS::Cinder::Volume")
    assert volumes, "the create template has no Cinder volume"
    for name, volume in volumes.items():
        assert volume.get("deletion_policy") == "Retain", f"{name} is deleted with the stack"
    assert _user_data(template)["params"]["__DUPSTACK_MODE__"] == "create"
    assert "volume_id" not in template["parameters"]


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_security_group_allows_only_ssh_from_allowed_cidr_and_icmp(kind: str) -> None:
    template = _load(kind)
    assert _resources_of_type(template, "OS::Neutron::SecurityGroupRule") == {}
    groups = _resources_of_type(template, "OS::Neutron::SecurityGroup")
    assert list(groups) == ["security_group"]
    rules = groups["security_group"]["properties"]["rules"]
    assert all(rule.get("direction", "ingress") == "ingress" for rule in rules)
    by_protocol = {rule["protocol"]: rule for rule in rules}
    assert len(by_protocol) == len(rules) == 2
    assert set(by_protocol) == {"tcp", "icmp"}
    ssh = by_protocol["tcp"]
    assert (ssh["port_range_min"], ssh["port_range_max"]) == (22, 22)
    assert ssh["remote_ip_prefix"] == {"get_param": "ssh_allowed_cidr"}
    assert template["resources"]["port"]["properties"]["security_groups"] == [
        {"get_resource": "security_group"}
    ]


@pytest.mark.parametrize("kind", ["create", "restore"])
def test_router_and_floating_ip_wiring(kind: str) -> None:
    resources = _load(kind)["resources"]
    gateway = resources["router"]["properties"]["external_gateway_info"]
    assert gateway["network"] == {"get_param": "public_network"}
    assert resources["floating_ip"]["properties"]["floating_network"] == {
        "get_param": "public_network"
    }
    depends_on = resources["floating_ip_association"].get("depends_on", [])
    depends_on = [depends_on] if isinstance(depends_on, str) else depends_on
    assert "router_interface" in depends_on, (
        "the floating IP must be associated only once the subnet is on the router"
    )
