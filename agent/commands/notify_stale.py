"""dupctl notify stale: hosts without a recent successful backup, each told once (cron)."""

from __future__ import annotations

import argparse
import json

from agent.commands.common import require_root
from agent.paths import ServerPaths

HELP = "hosts without a recent successful backup; tells once (cron: hourly)"
DESCRIPTION = (
    "Lists the hosts whose last successful backup is older than notifications.stale_after "
    "(default 36h) and tells about each once, until a new success re-arms it. A host never "
    "backed up counts from when this command first saw it."
)
EXAMPLES = """\
examples:
  dupctl notify stale
  dupctl notify stale --json | jq -r '.hosts[].host'
"""
TOLD = {
    "now": "told now",
    "before": "told before",
    "failed": "not told: no URL took it",
    "nobody": "not told: no notifications: section",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.notify import check_stale

    require_root("notify stale")
    report = check_stale(paths)
    if args.json:
        print(json.dumps(report, indent=2))
    elif report["stale_after"] is None:
        print("staleness is off (notifications.stale_after: null)")
    elif not report["hosts"]:
        print(f"no host is stale (stale after {report['stale_after']})")
    for host in [] if args.json else report["hosts"]:
        last = host["last_success"] or "never"
        print(f"{host['host']}: stale, last success {last} ({TOLD[host['told']]})")
    return 1 if any(host["told"] == "failed" for host in report["hosts"]) else 0
