"""dupctl host remove: forget a host; its backups stay unless --purge, which asks first."""

from __future__ import annotations

import argparse
import sys

from agent.commands.common import require_root, say
from agent.errors import UsageError
from agent.paths import ServerPaths

HELP = "forget a host: account, SFTP key, pin, inventory entry"
DESCRIPTION = (
    "Remove the host's account, SFTP key, host key pin and inventory entry. "
    "Its backups stay on the volume unless --purge."
)
EXAMPLES = """\
examples:
  dupctl host remove web1               # its backups stay on the volume
  dupctl host remove web1 --purge       # asks for its name on a terminal
  dupctl host remove web1 --purge --yes # scripts: no question
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name")
    parser.add_argument("--purge", action="store_true", help="also delete its backups")
    parser.add_argument("--yes", action="store_true", help="confirm --purge without asking")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import remote
    from agent.actions.host_remove import remove_host

    require_root("host remove")
    if args.purge and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"--purge deletes every backup of {args.name}",
                hint="add --yes to confirm",
            )
        typed = input(f"delete every backup of {args.name}? type its name to confirm: ")
        if typed.strip() != args.name:
            raise UsageError("not confirmed: nothing was changed")
    remove_host(paths, remote.Ssh.of_server(paths), args.name, args.purge, say)
    return 0
