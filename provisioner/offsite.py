"""The cloud side of a Swift offsite target: the container, and a Keystone application
credential that can reach only that container (v3 access rules)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from openstack import connection
from openstack import exceptions as sdk_exc

from provisioner.cloud import cloud_errors, has_service, unlogged
from provisioner.errors import CloudError, NotFound, Unsupported, UsageError

# Stricter than Swift (any 256 bytes but '/'): the name goes into access-rule paths, which
# Keystone matches against the request path as sent, so it must need no percent-encoding.
CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
SERVICE = "object-store"
ROLE_HINT = "your user needs the object-store role of this project (often member or swiftoperator)"


@dataclass(frozen=True)
class Credential:
    """An application credential as Keystone lists it (the secret is never listed)."""

    id: str
    name: str
    rules: frozenset[tuple[str, str, str]]  # (service, method, path)
    unrestricted: bool


@dataclass(frozen=True)
class IssuedCredential:
    """A credential just created: the only moment its secret is known."""

    id: str
    secret: str


def check_container_name(name: str) -> str:
    """`name` if it can be a container that access rules can name; UsageError otherwise."""
    if not CONTAINER_NAME.fullmatch(name):
        raise UsageError(
            f"--swift {name!r} is not a container name this command can restrict a credential to",
            "use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def require_swift(conn: connection.Connection, region: str | None) -> str:
    """The object-store endpoint (in `region`, else the cloud's); NotFound if there is none."""
    where = f" in region {region}" if region else ""
    if not has_service(conn, SERVICE):
        raise NotFound(
            f"the cloud's catalog has no object-store (Swift) service{where}",
            "name the region that has it with --region, or ask your cloud provider",
        )
    with cloud_errors("reading the object-store endpoint"):
        return str(conn.object_store.get_endpoint()).rstrip("/")


def identity_url(conn: connection.Connection) -> str:
    """Keystone's v3 URL as the server's Swift client authenticates against it."""
    with cloud_errors("reading the identity endpoint"):
        return str(conn.identity.get_endpoint_data().url).rstrip("/")


def account_path(endpoint: str) -> str:
    """The path of the project's Swift account (/v1/AUTH_<project>), as requests carry it."""
    return urllib.parse.urlsplit(endpoint).path.rstrip("/")


def access_rules(account: str, container: str) -> list[dict[str, str]]:
    """Keystone access rules for the container and every object in it, nothing else."""
    paths = (f"{account}/{container}", f"{account}/{container}/**")
    return [
        {"service": SERVICE, "method": method, "path": path} for path in paths for method in METHODS
    ]


def ensure_container(conn: connection.Connection, name: str) -> str:
    """Create the container unless it exists: 'exists' or 'created'."""
    with cloud_errors(f"looking up container {name}"):
        try:
            conn.object_store.get_container_metadata(name)
            return "exists"
        except sdk_exc.NotFoundException:
            pass
        except sdk_exc.ForbiddenException as exc:
            raise CloudError(f"Swift refused to show container {name} (403)", ROLE_HINT) from exc
    with cloud_errors(f"creating container {name}"):
        try:
            conn.object_store.create_container(name=name)
        except sdk_exc.ForbiddenException as exc:
            raise CloudError(f"Swift refused to create container {name} (403)", ROLE_HINT) from exc
    return "created"


def _credential(item: Any) -> Credential:
    return Credential(
        id=item.id,
        name=item.name,
        rules=frozenset(
            (rule.get("service", ""), rule.get("method", ""), rule.get("path", ""))
            for rule in item.access_rules or []
        ),
        unrestricted=bool(item.unrestricted),
    )


def find_credentials(conn: connection.Connection, name: str) -> list[Credential]:
    """The current user's application credentials called `name` (Keystone keeps names
    unique per user, so at most one); Unsupported on a Keystone without them. The SDK sends
    no name filter for them, so the user's list is read and filtered here."""
    with cloud_errors(f"looking up application credential {name}"):
        try:
            items = conn.identity.application_credentials(conn.current_user_id)
            return [_credential(item) for item in items if item.name == name]
        except sdk_exc.NotFoundException as exc:
            raise Unsupported(
                "this cloud's Keystone has no application credentials (they need Queens or later)",
                "nothing was changed; ask your cloud provider, or write a credentials file by hand "
                "(docs/stack-offsite.md)",
            ) from exc


def create_credential(
    conn: connection.Connection, name: str, description: str, rules: list[dict[str, str]]
) -> IssuedCredential:
    """A new restricted credential of the current user, allowed `rules` only. Keystone makes
    the secret, so no secret is ever in a request (nor echoed by a validation error)."""
    with cloud_errors(f"creating application credential {name}"):
        try:
            with unlogged():
                created = conn.identity.create_application_credential(
                    conn.current_user_id,
                    name=name,
                    description=description,
                    unrestricted=False,
                    access_rules=rules,
                )
                return IssuedCredential(id=created.id, secret=created.secret)
        except sdk_exc.BadRequestException as exc:
            if "access_rules" not in str(exc):
                raise
            raise Unsupported(
                "this cloud's Keystone does not take access rules (they need Train or later): "
                "it cannot limit a credential to one container",
                "no credential was made; ask your cloud provider to upgrade Keystone, or write "
                "a credentials file by hand (docs/stack-offsite.md)",
            ) from exc
        except sdk_exc.ForbiddenException as exc:
            raise CloudError(
                f"Keystone refused to create application credential {name} (403)",
                "log in with a password: an application credential cannot create others; "
                "otherwise the cloud's policy forbids them, ask your cloud provider",
            ) from exc


def delete_credential(conn: connection.Connection, credential: Credential) -> None:
    """Delete it; a credential already gone counts as deleted."""
    with cloud_errors(f"deleting application credential {credential.name}"):
        conn.identity.delete_application_credential(
            conn.current_user_id, credential.id, ignore_missing=True
        )
