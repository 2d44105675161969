"""dupctl host add: make a tenant host ready for backups; reruns converge, never duplicate."""

from __future__ import annotations

import argparse
from pathlib import Path

from agent.commands.common import add_connect_timeout, read_small_file, require_root, say, whole
from agent.paths import ServerPaths

HELP = "make a tenant host ready for backups (idempotent)"
DESCRIPTION = (
    "Create the host's chrooted SFTP account dup-NAME and its folder on the volume, "
    "pin the host's SSH key (first seen, or --host-key), log in to it with this "
    "server's key, check duplicity >= 3 there, give it its SFTP key and this server's "
    "pinned key, probe SFTP from the host, and record it in the inventory. "
    "Reruns change nothing."
)
EXAMPLES = """\
examples:
  dupctl host add web1 --address 10.77.0.11 --server-address 10.77.0.10
  dupctl host add web1 --address 10.77.0.11 --path /etc --path /var/www \\
      --exclude /var/www/cache
  # a rebuilt host: pin the key read on its console
  dupctl host add web1 --address 10.77.0.11 --host-key web1_ed25519.pub
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the host's name (becomes the account dup-NAME)")
    parser.add_argument("--address", required=True, help="where this server reaches the host")
    parser.add_argument("--user", help="admin user to log in as (default root; else sudo -n)")
    parser.add_argument("--port", type=whole(1, 65535), help="the host's SSH port (default 22)")
    parser.add_argument(
        "--path", dest="paths", action="append", metavar="PATH", help="back up PATH (repeat)"
    )
    parser.add_argument(
        "--exclude", dest="excludes", action="append", metavar="PATTERN", help="leave out (repeat)"
    )
    parser.add_argument(
        "--host-key",
        type=Path,
        metavar="FILE",
        help="the host's SSH public key (e.g. its ssh_host_ed25519_key.pub): pin this one, "
        "replacing any pin (default: pin the key it offers the first time)",
    )
    parser.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="when the host's address changes: pin the key it offers at the new one (shown "
        "first without this flag)",
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="install duplicity on the host if it lacks it (a venv in /opt/dupstack-client)",
    )
    parser.add_argument(
        "--server-address",
        metavar="ADDRESS",
        help="how hosts reach this server (needed once; default: the inventory's)",
    )
    add_connect_timeout(parser)


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import remote
    from agent.actions.host_add import HostRequest, add_host

    require_root("host add")
    host_key = read_small_file(args.host_key, "--host-key") if args.host_key else None
    request = HostRequest(
        name=args.name,
        address=args.address,
        user=args.user,
        port=args.port,
        paths=tuple(args.paths) if args.paths else None,
        excludes=tuple(args.excludes) if args.excludes else None,
        host_key=host_key,
        accept_new_host_key=args.accept_new_host_key,
        install=args.install,
        server_address=args.server_address,
    )
    add_host(paths, request, remote.Ssh.of_server(paths, args.timeout), say)
    return 0
