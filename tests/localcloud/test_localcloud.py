"""localcloud: real Keystone + real Heat on loopback, driven by openstacksdk over HTTP.

The module starts one local cloud (about 8 s) and deploys the committed templates
with the stand-in environment. If the OpenStack venv is missing the tests FAIL:
they must not pass without Heat having seen the templates.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # localcloud is a repo-only package, never installed
    sys.path.insert(0, str(ROOT))

import openstack  # noqa: E402
from openstack import exceptions as sdk_exceptions  # noqa: E402
from openstack.orchestration.util import template_utils  # noqa: E402

from localcloud import LocalCloud, start_local_cloud  # noqa: E402

pytestmark = pytest.mark.openstack

TEMPLATE = ROOT / "heat" / "dupstack.heat.yaml"
RESTORE_TEMPLATE = ROOT / "heat" / "dupstack.restore.heat.yaml"
PARAMS = {
    "keypair_name": "demo-key",
    "flavor_name": "m1.small",
    "image": "debian-12",
    "passcode": "correct horse battery staple",
    "ssh_allowed_cidr": "198.51.100.0/24",
}
STACK_TIMEOUT = 30.0


def _running(workdir: Path) -> list[str]:
    """Command lines of live processes that mention ``workdir``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(workdir) in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    workdir = tmp_path_factory.mktemp("localcloud")
    started = time.monotonic()
    running = start_local_cloud(workdir)
    print(f"local cloud up in {time.monotonic() - started:.1f}s: {running.auth_url}")
    pids = dict(running.pids)
    try:
        yield running
    finally:
        running.stop()
    assert not running.pids
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists(), f"service pid {pid} still running"
    assert _running(workdir) == []


@pytest.fixture(scope="module")
def conn(cloud: LocalCloud) -> Iterator[openstack.connection.Connection]:
    saved = {k: os.environ.get(k) for k in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")}
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(cloud.clouds_yaml)
    os.environ.pop("OS_CLOUD", None)
    try:
        connection = openstack.connect(cloud="local")
        yield connection
        connection.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _create(
    conn: openstack.connection.Connection,
    name: str,
    template: Path,
    params: dict[str, Any],
    env_files: list[Path],
) -> Any:
    """Create the stack as ``openstack stack create -t T -e E`` would; return it."""
    files, tpl = template_utils.get_template_contents(template_file=str(template))
    env_paths = [str(p) for p in env_files]
    env_files_data, env = template_utils.process_multiple_environments_and_files(env_paths)
    return conn.orchestration.create_stack(
        name=name,
        template=tpl,
        files={**files, **env_files_data},
        environment=env,
        parameters=params,
    )


def _wait(conn: openstack.connection.Connection, stack_id: str, cloud: LocalCloud) -> Any:
    """Poll until the stack leaves *_IN_PROGRESS; None once it is gone."""
    deadline = time.monotonic() + STACK_TIMEOUT
    while time.monotonic() < deadline:
        stack = conn.orchestration.find_stack(stack_id)
        if stack is None or stack.status == "DELETE_COMPLETE":
            return None
        if not stack.status.endswith("IN_PROGRESS"):
            return conn.orchestration.get_stack(stack.id)
        time.sleep(0.2)
    pytest.fail(f"stack {stack_id} still in progress\n{cloud.log_tail()}")


def _deploy(
    conn: openstack.connection.Connection,
    cloud: LocalCloud,
    name: str,
    template: Path = TEMPLATE,
    **params: Any,
) -> Any:
    created = _create(conn, name, template, {**PARAMS, **params}, [cloud.environment_file])
    stack = _wait(conn, created.id, cloud)
    assert stack.status == "CREATE_COMPLETE", f"{stack.status_reason}\n{cloud.log_tail()}"
    return stack


def _outputs(stack: Any) -> dict[str, Any]:
    return {o["output_key"]: o["output_value"] for o in stack.outputs}


def _is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except (TypeError, ValueError):
        return False


@pytest.fixture(scope="module")
def backup(conn: openstack.connection.Connection, cloud: LocalCloud) -> dict[str, Any]:
    """The dupstack stack, deployed once: its id and outputs."""
    stack = _deploy(conn, cloud, "dupstack-test")
    return {"id": stack.id, "outputs": _outputs(stack)}


def test_clouds_yaml_reaches_keystone_and_heat(
    conn: openstack.connection.Connection, cloud: LocalCloud
) -> None:
    assert conn.current_project["name"] == "demo"
    endpoint = conn.orchestration.get_endpoint()
    assert endpoint.startswith(cloud.heat_url + "/")
    assert all(stack.name for stack in conn.orchestration.stacks())  # Heat answers


def test_create_complete_with_sensible_outputs(
    backup: dict[str, Any], conn: openstack.connection.Connection, cloud: LocalCloud
) -> None:
    out = backup["outputs"]
    floating = ipaddress.ip_address(out["floating_ip"])
    assert floating in ipaddress.ip_network("203.0.113.0/24")
    assert out["ssh_command"] == f"ssh debian@{floating}"
    assert out["subnet_cidr"] == "192.168.254.0/24"
    assert ipaddress.ip_address(out["server_address"]) in ipaddress.ip_network(out["subnet_cidr"])
    for key in ("router_id", "subnet_id", "volume_id", "server_id", "security_group_id"):
        assert _is_uuid(out[key]), (key, out[key])

    resources = list(conn.orchestration.resources(backup["id"]))
    assert {r.status for r in resources} == {"CREATE_COMPLETE"}
    assert "OS::Nova::Server" in {r.resource_type for r in resources}

    volume = cloud.fake_resources("volumes")[out["volume_id"]]
    assert (volume["size"], volume["status"]) == (100, "in-use")
    server = cloud.fake_resources("servers")[out["server_id"]]
    assert server["key_name"] == "demo-key"
    assert server["first_address"] == out["server_address"]


def test_unknown_keypair_is_refused_by_name(
    conn: openstack.connection.Connection, cloud: LocalCloud
) -> None:
    params = {**PARAMS, "keypair_name": "no-such-key"}
    with pytest.raises(sdk_exceptions.BadRequestException, match="no-such-key"):
        _create(conn, "dupstack-badkey", TEMPLATE, params, [cloud.environment_file])
    assert conn.orchestration.find_stack("dupstack-badkey") is None


def test_properties_are_checked_against_the_real_schema(
    conn: openstack.connection.Connection, cloud: LocalCloud, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("port_range_min:", "port_rnage_min:", 1))
    with pytest.raises(sdk_exceptions.BadRequestException, match="port_rnage_min"):
        _create(conn, "dupstack-typo", broken, PARAMS, [cloud.environment_file])


def test_without_the_environment_real_types_need_real_services(
    conn: openstack.connection.Connection,
) -> None:
    with pytest.raises(sdk_exceptions.HttpException, match="not available"):
        _create(conn, "dupstack-noenv", TEMPLATE, PARAMS, [])


def test_delete_keeps_the_volume(
    backup: dict[str, Any], conn: openstack.connection.Connection, cloud: LocalCloud
) -> None:
    conn.orchestration.delete_stack(backup["id"])
    assert _wait(conn, backup["id"], cloud) is None
    volume = cloud.fake_resources("volumes")[backup["outputs"]["volume_id"]]
    assert volume["status"] == "available"  # deletion_policy: Retain, detached
    assert backup["outputs"]["server_id"] not in cloud.fake_resources("servers")
    assert backup["outputs"]["subnet_id"] not in cloud.fake_resources("subnets")


def test_restore_template_on_the_kept_volume(
    backup: dict[str, Any], conn: openstack.connection.Connection, cloud: LocalCloud
) -> None:
    if conn.orchestration.find_stack(backup["id"]) is not None:
        conn.orchestration.delete_stack(backup["id"])
        _wait(conn, backup["id"], cloud)
    volume_id = backup["outputs"]["volume_id"]

    with pytest.raises(sdk_exceptions.BadRequestException, match=str(uuid.UUID(int=7))):
        _create(
            conn, "restore-bad", RESTORE_TEMPLATE,
            {**PARAMS, "volume_id": str(uuid.UUID(int=7))}, [cloud.environment_file],
        )  # fmt: skip

    stack = _deploy(conn, cloud, "dupstack-restore", RESTORE_TEMPLATE, volume_id=volume_id)
    out = _outputs(stack)
    assert out["volume_id"] == volume_id
    assert ipaddress.ip_address(out["floating_ip"]).version == 4
    assert cloud.fake_resources("volumes")[volume_id]["status"] == "in-use"

    # A second server cannot take the volume while the first holds it.
    second = _create(
        conn, "dupstack-restore-2", RESTORE_TEMPLATE,
        {**PARAMS, "volume_id": volume_id}, [cloud.environment_file],
    )  # fmt: skip
    failed = _wait(conn, second.id, cloud)
    assert failed.status == "CREATE_FAILED"
    assert "in-use" in failed.status_reason

    for name in ("dupstack-restore", "dupstack-restore-2"):
        conn.orchestration.delete_stack(conn.orchestration.find_stack(name).id)
    for name in ("dupstack-restore", "dupstack-restore-2"):
        assert _wait(conn, name, cloud) is None
    assert cloud.fake_resources("volumes")[volume_id]["status"] == "available"
