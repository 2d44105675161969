"""dupctl offsite push: copy the hosts' sealed sets to the offsite targets now."""

from __future__ import annotations

import argparse
import json
import sys

from agent.commands.common import require_root, say
from agent.paths import ServerPaths

HELP = "copy the hosts' sets to the offsite targets (what is there and matches is skipped)"
DESCRIPTION = (
    "Every sealed file of each host goes to PREFIX/HOST/ on each target with duplicity's own "
    "name (volumes in the target's storage_class, the rest STANDARD), checked after upload; "
    "what is there and matches is skipped, so a killed push is completed by the next. Also "
    "run after each good backup (offsite.push_after_backup)."
)
EXAMPLES = """\
examples:
  dupctl offsite push                      # every host, every target
  dupctl offsite push web1 --target glacier
  dupctl offsite push --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    parser.add_argument("--target", action="append", default=[], metavar="T",
                        help="only this target (repeatable; default: every target)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one record per host and target")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import render
    from agent.actions.offsite_push import offsite_push

    require_root("offsite push")
    progress = (lambda line: None) if args.json else say
    if args.json or not sys.stdout.isatty():
        records = offsite_push(paths, args.hosts, args.target, progress)
    else:
        with render.transfer_progress() as meter:
            records = offsite_push(paths, args.hosts, args.target, progress, meter)
    if args.json:
        print(json.dumps(records, indent=2))
    return 0
