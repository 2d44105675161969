"""stack-connect: let tenant subnets and the backup server reach each other (router-interface-add).

If a subnet's gateway IP already belongs to the tenant's own router (the usual case), the
backup router joins through a new port and the subnet gets a host route to the backup subnet,
which DHCP hands to the tenant servers (at lease renewal, or `sudo dhclient -r && sudo dhclient`
on a server that must see it now). The backup server's security group gets SSH from the
subnet. Tenant servers' own security groups must allow SSH from the backup server.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from provisioner import stacks, subnets
from provisioner.cloud import connect
from provisioner.console import add_plain_row, out, plain_table

HELP = "attach tenant subnets to the backup router (--remove undoes it)"
EXAMPLES = """\
examples:
  stack-connect backup app-subnet db-subnet
  stack-connect backup 6b1f0c1e-...            # by subnet ID
  stack-connect backup app-subnet --remove     # undo
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="stack name")
    parser.add_argument("subnets", metavar="SUBNET", nargs="+", help="tenant subnet name or ID")
    parser.add_argument("--remove", action="store_true", help="disconnect the subnets")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    conn = connect(args.os_cloud)
    state = stacks.require_stack(conn, args.name)
    side = subnets.backup_side(args.name, state.outputs)
    step = subnets.detach_subnet if args.remove else subnets.attach_subnet
    results = [step(conn, side, subnet) for subnet in args.subnets]
    if args.json:
        print(json.dumps([asdict(result) for result in results], indent=2))
        return 0
    table = plain_table("subnet", "cidr", "backup router at", "changes")
    for result in results:
        changes = "; ".join(result.changes) or "none"
        add_plain_row(table, result.subnet, result.cidr, result.via or "-", changes)
    out.print(table)
    if not args.remove and any(
        change.startswith("host route") for result in results for change in result.changes
    ):
        server = state.outputs.get("server_address") or "the backup server"
        out.print(
            "Tenant servers pick up the new route at their next DHCP renewal; their security "
            f"groups must allow SSH from {server}.",
            markup=False,
        )
    return 0
