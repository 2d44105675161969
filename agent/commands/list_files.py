"""dupctl list: the files in a host's backup as of a time, read here from the volume."""

from __future__ import annotations

import argparse
import json

from agent.actions.list_files import list_files
from agent.actions.restore_offsite import list_offsite
from agent.commands.common import add_time_option, require_root, say
from agent.paths import ServerPaths

HELP = "the files in a host's backup"
EXAMPLES = """\
examples:
  dupctl list web1
  dupctl list web1 --time 3D                    # as of three days ago
  dupctl list web1 --time 2026-11-22T04:28:07Z --json
  dupctl list web1 --from glacier               # the offsite copy (never needs a thaw)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    add_time_option(parser)
    parser.add_argument("--from", dest="source", metavar="TARGET",
                        help="read the copy on this offsite target, not the volume")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    require_root("list")
    if args.source:
        files = list_offsite(paths, args.host, args.source, args.time)
    else:
        files = list_files(paths, args.host, args.time)
    if args.json:
        shown = [{"path": path, "mtime": f"{mtime:%Y-%m-%dT%H:%M:%SZ}"} for path, mtime in files]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    for path, mtime in [] if args.json else files:
        say(f"{mtime:%Y-%m-%d %H:%M:%S}  {path}")
    return 0
