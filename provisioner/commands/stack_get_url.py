"""stack-get-url: print the backup server's floating IP (or its ssh command)."""

from __future__ import annotations

import argparse

from provisioner import stacks
from provisioner.cloud import connect
from provisioner.console import out
from provisioner.errors import DupstackError

HELP = "print the backup server's floating IP"
EXAMPLES = """\
examples:
  stack-get-url backup            # 203.0.113.10
  stack-get-url backup --ssh      # ssh debian@203.0.113.10
  ssh $(stack-get-url backup --ssh | cut -d' ' -f2) sudo dupctl status
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="stack name")
    parser.add_argument("--ssh", action="store_true", help="print the ssh command instead")


def run(args: argparse.Namespace) -> int:
    state = stacks.require_stack(connect(args.os_cloud), args.name)
    key = "ssh_command" if args.ssh else "floating_ip"
    value = state.outputs.get(key)
    if not value:
        raise DupstackError(
            f"stack {args.name} has no {key} yet ({state.status})",
            f"see `stack-status {args.name}`",
        )
    out.print(value, markup=False)
    return 0
