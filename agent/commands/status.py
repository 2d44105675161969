"""dupctl status: each host's last run and sets, read here from the volume (hosts may be down)."""

from __future__ import annotations

import argparse
import json

from agent.commands.common import require_root
from agent.paths import ServerPaths

HELP = "each host's last run and its sets on the volume"
DESCRIPTION = (
    "Read on this server (hosts may be down): last run, chains and sets "
    "(duplicity collection-status), size on the volume, last and next full backup."
)
EXAMPLES = """\
examples:
  dupctl status
  dupctl status web1 --json | jq -r '.[0].next_full'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import render
    from agent.actions.status import hosts_status

    require_root("status")
    entries = hosts_status(paths, args.hosts)
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        render.print_status(entries)
    return 1 if any(entry["error"] for entry in entries) else 0
