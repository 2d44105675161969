"""dupctl offsite prune: each target's own retention, guarded by the classes' minimum days."""

from __future__ import annotations

import argparse
import json

from agent.commands.common import require_root, say
from agent.paths import ServerPaths

HELP = "apply each target's own retention (keep_full, remove_older_than) to its copies"
DESCRIPTION = (
    "Chains beyond the target's keep_full, or whose newest set is older than its "
    "remove_older_than, are removed whole (manifests first); the newest chain never. A chain "
    "holding an object younger than its storage class's minimum duration (IA 30 days, "
    "Glacier IR and Glacier 90, Deep Archive 180) is kept and what removing it would cost is "
    "said, unless --force. The volume's own prune never removes anything offsite."
)
EXAMPLES = """\
examples:
  dupctl offsite prune --dry-run
  dupctl offsite prune web1 --target glacier
  dupctl offsite prune --force          # early deletions too, charged for the rest
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    parser.add_argument("--target", action="append", default=[], metavar="T",
                        help="only this target (repeatable)")  # fmt: skip
    parser.add_argument("--force", action="store_true",
                        help="remove chains younger than their class's minimum too")  # fmt: skip
    parser.add_argument("--dry-run", action="store_true", help="say what would go, remove none")
    parser.add_argument("--json", action="store_true", help="one record per chain")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.offsite_prune import offsite_prune

    require_root("offsite prune")
    progress = (lambda line: None) if args.json else say
    records = offsite_prune(paths, args.hosts, args.target, force=args.force,
                            dry_run=args.dry_run, say=progress)  # fmt: skip
    if args.json:
        print(json.dumps(records, indent=2))
    return 0
