"""dupctl offsite status: per host and target, sets copied and pending, objects by class."""

from __future__ import annotations

import argparse
import json

from agent.commands.common import require_root
from agent.paths import ServerPaths

HELP = "per host and target: sets copied and pending, objects and bytes by class, cost a month"
DESCRIPTION = (
    "Read from this server's push ledgers and thaw tickets (no request to any target): what "
    "the last checked push left offsite, and a month of storing it (its objects in their "
    "classes, minimum sizes and per-object overhead included; prices as for `offsite plan`)."
)
EXAMPLES = """\
examples:
  dupctl offsite status
  dupctl offsite status web1 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import render
    from agent.actions.offsite_status import offsite_status

    require_root("offsite status")
    entries = offsite_status(paths, args.hosts)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    render.print_offsite_status(entries)
    return 0
