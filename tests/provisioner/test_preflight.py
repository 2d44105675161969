"""Pre-flight checks and stack-start, at the HTTP layer.

Real openstacksdk code talks to a requests-mocked cloud (conftest.FakeCloud) answering
with bodies shaped like Nova, Glance, Neutron, Cinder and Heat answer. Each test lists
the API calls it expects in order, and checks our output and the exit code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner import preflight
from provisioner.render import RESTORE_TEMPLATE, TEMPLATE
from tests.provisioner.heat_api import (
    ROUTER_ID,
    SECURITY_GROUP_ID,
    STACK,
    STACK_ID,
    VOLUME_ID,
    run_cli,
)

IMAGE_ID = "7d3e2c1b-4a5f-4e6d-8c9b-0a1b2c3d4e5f"
PASSCODE = "correct-horse-battery-staple-42"
START = [
    "stack-start",
    STACK,
    "--os-cloud",
    "testcloud",
    "--keypair",
    "mykey",
    "--flavor",
    "m1.small",
    "--image",
    "debian-12",
    "--ssh-cidr",
    "203.0.113.7/32",
]


# --- recorded-style bodies -------------------------------------------------------------


def keypair_list_entry(cloud, name: str) -> dict[str, Any]:
    """Nova lists key pairs as [{"keypair": {name, public_key, fingerprint, type}}]."""
    full = cloud.load("nova_keypair.json")["keypair"]
    return {"keypair": {k: full[k] for k in ("public_key", "fingerprint", "type")} | {"name": name}}


def flavor(cloud, name: str, flavor_id: str) -> dict[str, Any]:
    body = cloud.load("nova_flavor.json")["flavor"]
    text = json.dumps(body).replace(body["id"], flavor_id)
    return {**json.loads(text), "name": name}


def network(cloud, name: str = "public", external: bool = True, **fields: Any) -> dict[str, Any]:
    body = cloud.merged(cloud.load("neutron_network.json"), name=name, **fields)["network"]
    body["router:external"] = external
    return body


def volume(cloud, status: str = "available", **fields: Any) -> dict[str, Any]:
    body = cloud.merged(cloud.load("cinder_volume.json"), status=status, **fields)["volume"]
    if status == "in-use":
        body["attachments"] = [
            {
                "id": VOLUME_ID,
                "attachment_id": "0a9b8c7d-6e5f-4a3b-9c1d-0e2f4a6b8c0d",
                "volume_id": VOLUME_ID,
                "server_id": "e2b4c6d8-0a1c-4e3f-8a5b-7c9d1e3f5a7b",
                "host_name": "compute-3",
                "device": "/dev/vdb",
                "attached_at": "2024-04-20T17:02:10.000000",
            }
        ]
    return body


def stack_body(cloud, status: str = "CREATE_COMPLETE") -> dict[str, Any]:
    body = cloud.load(
        "heat_stack.json",
        STACK_ID=STACK_ID,
        ROUTER_ID=ROUTER_ID,
        SECURITY_GROUP_ID=SECURITY_GROUP_ID,
    )
    body["stack"]["stack_status"] = status
    return body


# --- expected call groups --------------------------------------------------------------


def expect_no_stack(cloud) -> None:
    """stack-start first looks for an existing stack of that name: Heat says 404."""
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            **cloud.not_found("orchestration", f"The Stack ({STACK}) could not be found."),
        }
    )


def expect_keypair(cloud, name: str = "mykey", existing: tuple[str, ...] = ()) -> None:
    """Nova GETs key pairs by name; a missing one is then searched in the list, and listed."""
    if not existing:
        cloud.register(
            {
                "method": "GET",
                "uri": cloud.url("compute", "os-keypairs", name),
                "json": cloud.merged(cloud.load("nova_keypair.json"), name=name),
            }
        )
        return
    listing = {"keypairs": [keypair_list_entry(cloud, n) for n in existing]}
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("compute", "os-keypairs", name),
            **cloud.not_found(
                "compute", f"Keypair {name} not found for user 9a7c2e1f0b3d4c5e8f6a1b2c3d4e5f60"
            ),
        },
        {"method": "GET", "uri": cloud.url("compute", "os-keypairs"), "json": listing},
        {"method": "GET", "uri": cloud.url("compute", "os-keypairs"), "json": listing},
    )


FLAVORS = (("m1.small", "c1a2b3d4-0000-4000-8000-00000000a001"), ("m1.large", "c1a2b3d4-4"))


def expect_flavor(cloud, name: str = "m1.small") -> None:
    """Nova flavors are looked up by ID (404 for a name), then in the detailed list."""
    listing = {"flavors": [flavor(cloud, n, i) for n, i in FLAVORS]}
    missing = name not in dict(FLAVORS)
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("compute", "flavors", name),
            **cloud.not_found("compute", f"Flavor {name} could not be found."),
        },
        {
            "method": "GET",
            "uri": cloud.url("compute", "flavors", "detail", is_public="None"),
            "json": listing,
        },
    )
    if missing:  # listed again to name the flavors that exist
        cloud.register(
            {
                "method": "GET",
                "uri": cloud.url("compute", "flavors", "detail", is_public="None"),
                "json": listing,
            }
        )


def expect_image(cloud, name: str = "debian-12") -> None:
    image = cloud.load("glance_image.json")
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("image", "images", name),
            **cloud.not_found("image", f"No image found with ID {name}"),
        },
        {
            "method": "GET",
            "uri": cloud.url("image", "images", name=name),
            "json": {
                "images": [image],
                "first": f"/v2/images?name={name}",
                "schema": "/v2/schemas/images",
            },
        },
    )


def expect_network(cloud, found: dict[str, Any] | None, name: str = "public") -> None:
    """Neutron: GET /networks/NAME is a 404 (not an ID), then GET /networks?name=NAME."""
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "networks", name),
            **cloud.not_found("network", f"Network {name} could not be found."),
        },
        {
            "method": "GET",
            "uri": cloud.url("network", "networks", name=name),
            "json": {"networks": [found] if found else []},
        },
    )


def expect_volume_by_id(cloud, body: dict[str, Any]) -> None:
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("block-storage", "volumes", VOLUME_ID),
            "json": {"volume": body},
        }
    )


def expect_create_and_complete(cloud) -> None:
    """POST /stacks, then the wait: Heat redirects /stacks/ID to /stacks/NAME/ID."""
    canonical = cloud.url("orchestration", "stacks", STACK, STACK_ID)
    cloud.register(
        {
            "method": "POST",
            "uri": cloud.url("orchestration", "stacks"),
            "status_code": 201,
            "json": {"stack": {"id": STACK_ID, "links": [{"href": canonical, "rel": "self"}]}},
        },
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK_ID),
            "status_code": 302,
            "headers": {"Location": canonical},
        },
        {"method": "GET", "uri": canonical, "json": stack_body(cloud)},
        # Events are read straight from /stacks/NAME/ID, without reading the stack again.
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK, STACK_ID, "events", sort_dir="asc"),
            "json": {"events": heat_events()},
        },
    )


def heat_events() -> list[dict[str, Any]]:
    events = []
    for number, (resource, status) in enumerate(
        [
            ("network", "CREATE_IN_PROGRESS"),
            ("network", "CREATE_COMPLETE"),
            ("server", "CREATE_COMPLETE"),
            (STACK, "CREATE_COMPLETE"),
        ]
    ):
        events.append(
            {
                "id": f"4b5c6d7e-8f90-4a1b-8c2d-3e4f5a6b7c{number:02d}",
                "event_time": f"2024-05-01T10:0{number}:00Z",
                "resource_name": resource,
                "logical_resource_id": resource,
                "physical_resource_id": "",
                "resource_status": status,
                "resource_status_reason": "state changed",
                "links": [],
            }
        )
    return events


def network_check(name: str) -> preflight.Check:
    """The external-network check of stack-start for network `name`."""
    checks = preflight.stack_checks("mykey", "m1.small", "debian-12", name, None)
    return next(c for c in checks if c.option == "--public-network")


def template_as_heat_receives_it(path: Path) -> dict[str, Any]:
    """The template as JSON (Heat's version date stays a string)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@pytest.fixture
def passcode_file(tmp_path: Path) -> Path:
    path = tmp_path / "passcode"
    path.write_text(PASSCODE + "\n")
    path.chmod(0o600)
    return path


# --- run_check with a real Connection --------------------------------------------------


def test_every_resource_present_every_check_ok(cloud) -> None:
    expect_keypair(cloud)
    expect_flavor(cloud)
    expect_image(cloud)
    expect_network(cloud, network(cloud))
    expect_volume_by_id(cloud, volume(cloud))
    conn = cloud.connection()

    checks = preflight.stack_checks("mykey", "m1.small", "debian-12", "public", VOLUME_ID)
    outcomes = [preflight.run_check(conn, check) for check in checks]

    assert [(o.check.label, o.status, o.detail) for o in outcomes] == [
        ("keypair", "ok", ""),
        ("flavor", "ok", ""),
        ("image", "ok", ""),
        ("external network", "ok", ""),
        ("backup volume", "ok", ""),
    ]
    assert [o.found.id for o in outcomes[1:]] == [
        FLAVORS[0][1],
        IMAGE_ID,
        "0b6b6f57-6f3e-4c2f-9d43-3bb0c9c1f8a2",
        VOLUME_ID,
    ]
    preflight.raise_for_outcomes(outcomes)  # nothing to raise
    cloud.assert_calls()
    assert cloud.writes() == []


def test_network_that_is_not_external_is_rejected(cloud) -> None:
    tenant_net = network(cloud, name="private", external=False, shared=False)
    expect_network(cloud, tenant_net, name="private")
    conn = cloud.connection()
    check = network_check("private")

    outcome = preflight.run_check(conn, check)

    assert outcome.status == "rejected"
    assert "not an external network" in outcome.detail
    with pytest.raises(preflight.PreflightFailed) as caught:
        preflight.raise_for_outcomes([outcome])
    assert caught.value.exit_code == 3
    assert "external network 'private' is not an external network" in caught.value.message
    assert "--public-network" in caught.value.hint
    cloud.assert_calls()


def test_missing_network_lists_only_external_networks(cloud) -> None:
    expect_network(cloud, None, name="publik")
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("network", "networks", **{"router:external": "True"}),
            "json": {"networks": [network(cloud, "public"), network(cloud, "ext-net2")]},
        }
    )
    conn = cloud.connection()
    check = network_check("publik")

    outcome = preflight.run_check(conn, check)

    assert (outcome.status, outcome.detail) == ("missing", "not found; existing: ext-net2, public")
    cloud.assert_calls()


# --- through the CLI --------------------------------------------------------------------


def test_missing_keypair_and_flavor_one_error_naming_both(cloud, capsys) -> None:
    expect_no_stack(cloud)
    expect_keypair(cloud, "nokey", existing=("mykey", "ci-key"))
    expect_flavor(cloud, "m1.huge")
    expect_image(cloud)
    expect_network(cloud, network(cloud))
    argv = [*START]
    argv[argv.index("mykey")] = "nokey"
    argv[argv.index("m1.small")] = "m1.huge"

    code, out, err = run_cli(argv, capsys)

    assert code == 3
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: pre-flight: keypair 'nokey' not found; existing: ci-key, mykey; "
        "flavor 'm1.huge' not found; existing: m1.large, m1.small"
    ]
    assert "hint: pass --keypair, --flavor with one that exists" in err
    assert "Traceback" not in err
    # Every check ran and reported (image and network were fine), then nothing was created.
    assert "ok       image 'debian-12'" in err
    assert "ok       external network 'public'" in err
    assert out == ""
    cloud.assert_calls()
    assert cloud.writes() == []


def test_restore_volume_in_use_is_rejected(cloud, capsys, passcode_file) -> None:
    expect_no_stack(cloud)
    expect_keypair(cloud)
    expect_flavor(cloud)
    expect_image(cloud)
    expect_network(cloud, network(cloud))
    expect_volume_by_id(cloud, volume(cloud, "in-use"))
    argv = [*START, "--restore-volume", VOLUME_ID, "--passcode-file", str(passcode_file)]

    code, _out, err = run_cli(argv, capsys)

    assert code == 3
    assert f"error: pre-flight: backup volume '{VOLUME_ID}' is in-use, not available" in err
    assert "hint: pass --restore-volume with one that exists" in err
    cloud.assert_calls()
    assert cloud.writes() == []


def test_restore_volume_by_name_is_passed_to_heat_by_id(cloud, capsys, passcode_file) -> None:
    expect_no_stack(cloud)
    expect_keypair(cloud)
    expect_flavor(cloud)
    expect_image(cloud)
    expect_network(cloud, network(cloud))
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("block-storage", "volumes", "backup-volume"),
            **cloud.not_found("block-storage", "Volume backup-volume could not be found."),
        },
        {
            "method": "GET",
            "uri": cloud.url("block-storage", "volumes", "detail", name="backup-volume"),
            "json": {"volumes": [volume(cloud)]},
        },
    )
    expect_create_and_complete(cloud)
    argv = [*START, "--restore-volume", "backup-volume", "--passcode-file", str(passcode_file)]

    code, out, err = run_cli(argv, capsys)

    assert code == 0, err
    sent = cloud.sent("POST", cloud.url("orchestration", "stacks"))
    assert sent["parameters"]["volume_id"] == VOLUME_ID
    assert "volume_size" not in sent["parameters"]
    assert sent["template"] == template_as_heat_receives_it(RESTORE_TEMPLATE)
    assert "Backup server backup is ready." in out
    cloud.assert_calls()


def test_catalog_without_compute_and_image_skips_them_and_launches(
    make_cloud, capsys, passcode_file
) -> None:
    cloud = make_cloud(services=("identity", "network", "block-storage", "orchestration"))
    expect_no_stack(cloud)
    expect_network(cloud, network(cloud))
    expect_create_and_complete(cloud)
    argv = [*START, "--passcode-file", str(passcode_file)]

    code, out, err = run_cli(argv, capsys)

    assert code == 0, err
    assert "skipped  keypair 'mykey' (the cloud's catalog has no compute service)" in err
    assert "skipped  flavor 'm1.small' (the cloud's catalog has no compute service)" in err
    assert "skipped  image 'debian-12' (the cloud's catalog has no image service)" in err
    assert "ok       external network 'public'" in err
    # No request ever went to the services the catalog does not list.
    hosts = {r.hostname for r in cloud.mocker.request_history}
    assert not hosts & {"compute.example.com", "image.example.com"}

    sent = cloud.sent("POST", cloud.url("orchestration", "stacks"))
    assert sent["stack_name"] == STACK
    assert sent["parameters"] == {
        "keypair_name": "mykey",
        "flavor_name": "m1.small",
        "image": "debian-12",
        "ssh_user": "debian",
        "public_network": "public",
        "ssh_allowed_cidr": "203.0.113.7/32",
        "backup_subnet_cidr": "192.168.254.0/24",
        "passcode": PASSCODE,
        "volume_size": 100,
    }
    assert sent["template"] == template_as_heat_receives_it(TEMPLATE)
    assert sent["disable_rollback"] is True
    assert sent["timeout_mins"] == 30
    # The passcode travels in the request body only: never printed, never in a URL.
    assert PASSCODE not in out + err
    assert all(PASSCODE not in r.url for r in cloud.mocker.request_history)
    assert "Backup server backup is ready." in out
    assert "floating IP  203.0.113.10" in out
    cloud.assert_calls()


def test_generated_passcode_is_sent_and_shown_exactly_once(cloud, capsys) -> None:
    expect_no_stack(cloud)
    expect_keypair(cloud)
    expect_flavor(cloud)
    expect_image(cloud)
    expect_network(cloud, network(cloud))
    expect_create_and_complete(cloud)

    code, out, err = run_cli(START, capsys)

    assert code == 0, err
    passcode = cloud.sent("POST", cloud.url("orchestration", "stacks"))["parameters"]["passcode"]
    assert len(passcode) >= 32
    assert (out + err).count(passcode) == 1
    assert "Generated passcode (shown once" in out
    cloud.assert_calls()


def test_existing_stack_is_reported_not_recreated(cloud, capsys) -> None:
    canonical = cloud.url("orchestration", "stacks", STACK, STACK_ID)
    cloud.register(
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK),
            "status_code": 302,
            "headers": {"Location": canonical},
        },
        {"method": "GET", "uri": canonical, "json": stack_body(cloud)},
        {
            "method": "GET",
            "uri": cloud.url("orchestration", "stacks", STACK_ID),
            "status_code": 302,
            "headers": {"Location": canonical},
        },
        {"method": "GET", "uri": canonical, "json": stack_body(cloud)},
    )

    code, out, err = run_cli(START, capsys)

    assert code == 0, err
    assert "stack backup exists: CREATE_COMPLETE" in err
    assert "floating IP  203.0.113.10" in out
    cloud.assert_calls()
    assert cloud.writes() == []
