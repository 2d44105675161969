"""Pre-flight checks: do the keypair, flavor, image, network (and restore volume) exist?

Each check names what is missing and what exists instead. A check whose service is not in
the cloud's catalog is reported as skipped rather than failing the launch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from openstack import connection
from openstack import exceptions as sdk_exc

from provisioner.cloud import cloud_errors, has_service
from provisioner.errors import DupstackError

MAX_LISTED = 8


class PreflightFailed(DupstackError):
    """Something the stack needs does not exist in the cloud."""

    exit_code = 3


@dataclass(frozen=True)
class Check:
    """Look up `name` (a `label`) through `service_type`; `accept` vets what was found."""

    label: str
    option: str
    name: str
    service_type: str
    find: Callable[[connection.Connection, str], Any]
    existing: Callable[[connection.Connection], Iterable[str]]
    accept: Callable[[Any], str] = lambda _found: ""


@dataclass(frozen=True)
class Outcome:
    """The result of one check: status is ok, missing, rejected or skipped."""

    check: Check
    status: str
    detail: str = ""
    found: Any = None


def _names(resources: Iterable[Any]) -> list[str]:
    return sorted({str(res.name or res.id) for res in resources})


def _external_network(network: Any) -> str:
    if not network.is_router_external:
        return "is not an external network (router:external is false)"
    return ""


def _available_volume(volume: Any) -> str:
    if volume.status != "available":
        return f"is {volume.status}, not available (detach it or delete the stack using it)"
    return ""


def stack_checks(
    keypair: str, flavor: str, image: str, network: str, restore_volume: str | None
) -> list[Check]:
    """The checks stack-start runs before it creates a stack."""
    checks = [
        Check(
            "keypair",
            "--keypair",
            keypair,
            "compute",
            lambda c, n: c.compute.find_keypair(n, ignore_missing=False),
            lambda c: _names(c.compute.keypairs()),
        ),
        Check(
            "flavor",
            "--flavor",
            flavor,
            "compute",
            lambda c, n: c.compute.find_flavor(n, ignore_missing=False),
            lambda c: _names(c.compute.flavors()),
        ),
        Check(
            "image",
            "--image",
            image,
            "image",
            lambda c, n: c.image.find_image(n, ignore_missing=False),
            lambda c: _names(c.image.images()),
        ),
        Check(
            "external network",
            "--public-network",
            network,
            "network",
            lambda c, n: c.network.find_network(n, ignore_missing=False),
            lambda c: _names(c.network.networks(is_router_external=True)),
            _external_network,
        ),
    ]
    if restore_volume:
        checks.append(
            Check(
                "backup volume",
                "--restore-volume",
                restore_volume,
                "block-storage",
                lambda c, n: c.block_storage.find_volume(n, ignore_missing=False),
                lambda c: _names(c.block_storage.volumes()),
                _available_volume,
            )
        )
    return checks


def run_check(conn: connection.Connection, check: Check) -> Outcome:
    """Run one check against the cloud."""
    if not has_service(conn, check.service_type):
        return Outcome(check, "skipped", f"the cloud's catalog has no {check.service_type} service")
    with cloud_errors(f"looking up {check.label} {check.name!r}"):
        try:
            found = check.find(conn, check.name)
        except sdk_exc.NotFoundException:
            found = None
        if found is None:
            existing = list(check.existing(conn))
            shown = ", ".join(existing[:MAX_LISTED]) or "none"
            if len(existing) > MAX_LISTED:
                shown += f", ... ({len(existing)} in all)"
            return Outcome(check, "missing", f"not found; existing: {shown}")
    problem = check.accept(found)
    return (
        Outcome(check, "rejected", problem, found) if problem else Outcome(check, "ok", "", found)
    )


def raise_for_outcomes(outcomes: list[Outcome]) -> None:
    """One PreflightFailed naming every missing or unusable resource, if any."""
    bad = [o for o in outcomes if o.status in ("missing", "rejected")]
    if bad:
        message = "; ".join(f"{o.check.label} {o.check.name!r} {o.detail}" for o in bad)
        options = ", ".join(dict.fromkeys(o.check.option for o in bad))
        raise PreflightFailed(f"pre-flight: {message}", f"pass {options} with one that exists")
