"""dupctl schedule show: every cron job, its next and last run; warns if the crontab lags."""

from __future__ import annotations

import argparse
import json
import sys

from agent.commands.common import require_root
from agent.paths import ServerPaths

HELP = "every job and its next run"
EXAMPLES = """\
examples:
  dupctl schedule show
  dupctl schedule show --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import render
    from agent.actions.schedule import show_schedule

    require_root("schedule show")
    schedule = show_schedule(paths)
    if args.json:
        print(json.dumps(schedule, indent=2))
    else:
        render.print_schedule(schedule["jobs"])
    if not schedule["up_to_date"]:
        print(
            f"dupctl: warning: {schedule['crontab']} is not what the inventory says yet: "
            "`dupctl schedule apply` writes it (cron does within 5 minutes)",
            file=sys.stderr,
        )
    return 0
