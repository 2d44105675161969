"""dupctl sets: a host's chains and sets, with each set's exact time to pass as --time."""

from __future__ import annotations

import argparse
import json

from agent.commands.common import require_root
from agent.paths import ServerPaths

HELP = "a host's chains and sets, with the exact time of each"
DESCRIPTION = (
    "Read from the file names in the host's folder on the volume (nothing decrypted; the host "
    "may be down): each set's type, time (UTC, as --time takes it: that time selects that "
    "set), volumes, bytes, and whether it is complete (has its manifest) and sealed."
)
EXAMPLES = """\
examples:
  dupctl sets web1
  dupctl sets web1 --json | jq -r '.chains[-1].sets[-1].time'
  dupctl restore web1 --time 2026-12-02T20:17:16Z --path /etc/hosts --to /root/r
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import render
    from agent.actions.sets import host_sets

    require_root("sets")
    found = host_sets(paths, args.host)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        render.print_sets(found)
    return 0
