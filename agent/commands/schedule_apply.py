"""dupctl schedule apply: rewrite the hosts' crontab from the inventory, only if it changed."""

from __future__ import annotations

import argparse

from agent.commands.common import require_root, say
from agent.paths import ServerPaths

HELP = "rewrite the crontab from the inventory (if it changed)"
EXAMPLES = """\
examples:
  dupctl schedule apply
  dupctl schedule apply --quiet       # what cron runs every 5 minutes
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", action="store_true", help="say nothing when nothing changed")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.schedule import apply_schedule

    require_root("schedule apply")
    changed = apply_schedule(paths)
    if changed or not args.quiet:
        say(f"{paths.hosts_cron_file} {'written' if changed else 'up to date'}")
    return 0
