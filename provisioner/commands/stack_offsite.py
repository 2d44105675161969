"""stack-offsite: a Swift container in your own cloud as an offsite target of the backup server.

Creates the container unless it exists, and a Keystone application credential of yours,
named dupstack-STACK-TARGET, that reaches that container and nothing else (access rules:
GET, HEAD, PUT, POST and DELETE on the container and its objects). It installs the
credential on the backup server over ssh (your own ssh client and key, to the stack's
floating IP) as /etc/dupstack/offsite/TARGET.ini, root's, mode 0600; the secret travels on
ssh's stdin, never in a command line, a log or this terminal. Then it prints the
offsite.targets stanza to add to the server's inventory.

Running it again is safe: what is in place is kept. A credential's secret cannot be read
back, so when the server's copy is missing or holds another credential (a rebuilt server,
an install that failed) or the access rules differ, the credential is deleted and created
anew (rotated) and the new secret installed; --rotate forces that.

--to-file FILE writes the credentials file here (mode 0600) instead of using ssh, and prints
the command that installs it. --remove deletes the credential and the server's copy; the
container and its objects (your offsite backups) are always kept.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from openstack import connection

from provisioner import offsite, server, stacks
from provisioner.cloud import connect
from provisioner.console import add_plain_row, out, plain_table
from provisioner.errors import DupstackError, UsageError

HELP = "make a Swift container an offsite target: container, credential, install"
EXAMPLES = """\
examples:
  stack-offsite backup --swift dupstack-offsite             # target 'swift', over ssh
  stack-offsite backup --swift dr-copies --name dr --region RegionTwo --prefix project1
  stack-offsite backup --swift dupstack-offsite --identity ~/.ssh/mykey
  stack-offsite backup --swift dupstack-offsite --to-file swift.ini   # no ssh: you install it
  stack-offsite backup --swift dupstack-offsite --rotate    # a new secret on the server
  stack-offsite backup --swift dupstack-offsite --remove    # credential gone, container kept
"""
TARGET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # agent/config/schema.json
PREFIX = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
REGION = re.compile(r"[A-Za-z0-9-]{1,64}")
CREDENTIALS_DIR = "/etc/dupstack/offsite"
INVENTORY = "/etc/duplicity/dupstack.yaml"
ID_KEY = "application_credential_id"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="stack name")
    parser.add_argument(
        "--swift", required=True, metavar="CONTAINER", help="Swift container (made if missing)"
    )
    parser.add_argument(
        "--name",
        dest="target",
        default="swift",
        metavar="TARGET",
        help="offsite target name in the inventory (default: swift)",
    )
    parser.add_argument("--region", help="region of the Swift endpoint (default: the cloud's)")
    parser.add_argument(
        "--prefix", default="dupstack", help="objects go under PREFIX/HOST/ (default: dupstack)"
    )
    parser.add_argument("--identity", type=Path, metavar="FILE", help="ssh private key to log in")
    parser.add_argument(
        "--to-file",
        type=Path,
        metavar="FILE",
        help="no ssh: write the credentials file here (mode 0600) and print how to install it",
    )
    parser.add_argument("--rotate", action="store_true", help="issue and install a new secret")
    parser.add_argument(
        "--remove",
        action="store_true",
        help="delete the credential and the server's copy; the container and its data stay",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _check_usage(args: argparse.Namespace) -> None:
    """Refuse bad input before anything is contacted."""
    offsite.check_container_name(args.swift)
    if not TARGET_NAME.fullmatch(args.target):
        raise UsageError(
            f"--name {args.target!r} is not a target name",
            "use 1 to 32 lowercase letters, digits or '-', not starting with '-'",
        )
    if not PREFIX.fullmatch(args.prefix):
        raise UsageError(
            f"--prefix {args.prefix!r} is not a prefix",
            "use a prefix like dupstack or backups/project1 (no leading or trailing /)",
        )
    if args.region is not None and not REGION.fullmatch(args.region):
        raise UsageError(f"--region {args.region!r} is not a region name", "e.g. RegionOne")
    if args.remove and args.rotate:
        raise UsageError(
            "--remove and --rotate exclude each other",
            "--rotate issues a new secret, --remove deletes the credential",
        )


def run(args: argparse.Namespace) -> int:
    _check_usage(args)
    credential_name = f"dupstack-{args.name}-{args.target}"
    path = f"{CREDENTIALS_DIR}/{args.target}.ini"
    conn = connect(args.os_cloud, args.region)
    step = _remove if args.remove else _install
    document = step(conn, args, credential_name, path)
    if args.json:
        print(json.dumps(document, indent=2))
    else:
        _print_report(document)
    return 0


def _install(
    conn: connection.Connection, args: argparse.Namespace, credential_name: str, path: str
) -> dict[str, Any]:
    state = stacks.require_stack(conn, args.name)
    login = server.Server.of_stack(state, args.identity)
    endpoint = offsite.require_swift(conn, args.region)
    auth_url = offsite.identity_url(conn)
    # Everything that only looks comes first: a cloud or server that cannot do the job
    # leaves no container, credential or file behind.
    existing = offsite.find_credentials(conn, credential_name)
    if args.to_file:
        installed = _local_value(args.to_file, ID_KEY)
    else:
        installed = server.installed_value(login, path, ID_KEY)
    container_state = offsite.ensure_container(conn, args.swift)
    rules = offsite.access_rules(offsite.account_path(endpoint), args.swift)
    change = _credential_change(existing, rules, installed, args.rotate)
    next_steps: list[str] = []
    if change is None:
        credential_id, credential_state, file_state = existing[0].id, "kept", "up to date"
    else:
        for old in existing:
            offsite.delete_credential(conn, old)
        description = (
            f"dupstack stack {args.name}, offsite target {args.target}: "
            f"Swift container {args.swift} only (stack-offsite)"
        )
        issued = offsite.create_credential(conn, credential_name, description, rules)
        content = _credentials_text(credential_name, args.swift, issued)
        if args.to_file:
            _write_secret_file(args.to_file, content)
            file_state = "written"
            next_steps.append(
                "install it on the server, then delete the local file: "
                + server.install_command(login, path, args.to_file)
            )
        else:
            server.install_secret_file(login, path, content)
            file_state = "installed"
        credential_id, credential_state = issued.id, change
    region = args.region or conn.config.get_region_name("object-store")
    target = {
        "type": "swift",
        "auth_url": auth_url,
        **({"region": region} if region else {}),
        "container": args.swift,
        "prefix": args.prefix,
        "credentials_file": path,
    }
    next_steps += [
        f"add the inventory stanza to {INVENTORY} on the server (under offsite.targets)",
        f"push: ssh {login} sudo dupctl offsite push --target {args.target}",
    ]
    return {
        "stack": args.name,
        "target": args.target,
        "container": {"name": args.swift, "region": region, "state": container_state},
        "application_credential": {
            "name": credential_name,
            "id": credential_id,
            "state": credential_state,
            "access_rules": rules,
        },
        "credentials_file": _file_entry(login, path, args.to_file, file_state),
        "inventory": {"offsite": {"targets": {args.target: target}}},
        "next_steps": next_steps,
    }


def _credential_change(
    existing: list[offsite.Credential],
    rules: list[dict[str, str]],
    installed_id: str | None,
    rotate: bool,
) -> str | None:
    """Why the credential has to be (re)issued, or None when the one in place is right."""
    if not existing:
        return "created"
    if rotate:
        return "rotated (--rotate)"
    wanted = frozenset((rule["service"], rule["method"], rule["path"]) for rule in rules)
    if len(existing) > 1 or existing[0].unrestricted or existing[0].rules != wanted:
        return "rotated (its access rules were not this container's)"
    if installed_id is None:
        return "rotated (the server had no copy of its secret)"
    if installed_id != existing[0].id:
        return "rotated (the server's copy was of another credential)"
    return None


def _remove(
    conn: connection.Connection, args: argparse.Namespace, credential_name: str, path: str
) -> dict[str, Any]:
    """Delete the credential, then the copy of its secret; a stack already gone only loses
    its credential (there is no server left to clean)."""
    state = stacks.find_stack(conn, args.name)
    login = server.Server.of_stack(state, args.identity) if state else None
    existing = offsite.find_credentials(conn, credential_name)
    for credential in existing:
        offsite.delete_credential(conn, credential)
    next_steps: list[str] = []
    if args.to_file:
        file_state = "removed" if args.to_file.is_file() else "absent"
        args.to_file.unlink(missing_ok=True)
        if login:
            next_steps.append("remove the server's copy: " + server.remove_command(login, path))
    elif login:
        server.remove_file(login, path)
        file_state = "removed"
    else:
        file_state = "skipped (no such stack)"
    if login:
        next_steps.append(f"remove offsite.targets.{args.target} from {INVENTORY} on the server")
    next_steps.append(
        f"container {args.swift} and its objects (your offsite backups) are kept; to delete "
        f"them: openstack container delete --recursive {args.swift}"
    )
    return {
        "stack": args.name,
        "target": args.target,
        "container": {"name": args.swift, "region": args.region, "state": "kept"},
        "application_credential": {
            "name": credential_name,
            "id": existing[0].id if existing else None,
            "state": "deleted" if existing else "absent",
            "access_rules": [],
        },
        "credentials_file": _file_entry(login, path, args.to_file, file_state),
        "inventory": None,
        "next_steps": next_steps,
    }


def _file_entry(
    login: server.Server | None, path: str, local: Path | None, state: str
) -> dict[str, Any]:
    """Where the secret's copy is: the server's path, and the local file of --to-file."""
    return {
        "server": login.destination if login else None,
        "path": path,
        "local_file": str(local) if local else None,
        "state": state,
    }


def _credentials_text(name: str, container: str, issued: offsite.IssuedCredential) -> str:
    """The file the agent reads (agent/offsite/credentials.py): key = value lines."""
    return (
        f"# Keystone application credential {name}: Swift container {container} only "
        "(made by stack-offsite)\n"
        f"{ID_KEY} = {issued.id}\n"
        f"application_credential_secret = {issued.secret}\n"
    )


def _local_value(path: Path, key: str) -> str | None:
    """`key`'s value in a local credentials file ("" if it has none), None without a file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DupstackError(f"cannot read {path}: {exc.strerror}", "check --to-file") from exc
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        if equals and name.strip() == key:
            return value.strip()
    return ""


def _write_secret_file(path: Path, content: str) -> None:
    """Write `content` to `path`, readable by its owner alone before any byte is in it."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            os.fchmod(descriptor, 0o600)
            file.write(content)
    except OSError as exc:
        raise DupstackError(
            f"cannot write {path}: {exc.strerror}",
            "the credential was made: fix the path and run again (a new secret is issued)",
        ) from exc


def _print_report(document: dict[str, Any]) -> None:
    container = document["container"]
    credential = document["application_credential"]
    file = document["credentials_file"]
    region = f" ({container['region']})" if container["region"] else ""
    where = file["local_file"] or f"{file['server'] or '-'}:{file['path']}"
    table = plain_table("what", "name", "state")
    add_plain_row(table, "container", container["name"] + region, container["state"])
    add_plain_row(
        table,
        "application credential",
        f"{credential['name']} ({credential['id'] or 'none'})",
        credential["state"],
    )
    add_plain_row(table, "credentials file", where, file["state"])
    out.print(table)
    if document["inventory"]:
        out.print("inventory stanza:", markup=False)
        out.print(yaml.safe_dump(document["inventory"], sort_keys=False).rstrip(), markup=False)
    out.print("next steps:", markup=False)
    for line in document["next_steps"]:
        out.print(f"  {line}", markup=False)
