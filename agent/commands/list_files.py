"""dupctl list: the files in a host's backup as of a time, read here from the volume."""

from __future__ import annotations

import argparse
import base64
import json
import os

from agent.commands.common import add_time_option, require_root, say
from agent.duplicity.list_files import Entry
from agent.metadata import shown
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
    from agent.actions.list_files import list_files
    from agent.actions.restore_offsite import list_offsite

    require_root("list")
    if not args.source:
        files = list_files(paths, args.host, args.time)
    else:
        files = list_offsite(paths, args.host, args.source, args.time)
    if args.json:
        # ASCII JSON: `path` is the exact name (bytes that are not UTF-8 as \udcXX surrogate
        # escapes, what Python's os functions and argv take back), `path_b64` its bytes
        print(json.dumps([_record(entry) for entry in files], indent=2))
    for entry in [] if args.json else files:
        say(f"{entry.mtime:%Y-%m-%d %H:%M:%S}  {shown(entry.path)}")
    return 0


def _record(entry: Entry) -> dict[str, str]:
    record = {
        "path": os.fsdecode(entry.path),
        "path_b64": base64.b64encode(entry.path).decode(),
        "mtime": f"{entry.mtime:%Y-%m-%dT%H:%M:%SZ}",
    }
    return record | ({"type": entry.type} if entry.type else {})
