"""dupctl backup: back up tenant hosts in parallel; the exit code tells if any failed."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from agent.commands.common import add_connect_timeout, require_root, say, whole
from agent.errors import UsageError
from agent.paths import ServerPaths

HELP = "back up tenant hosts (duplicity on each host, over SSH/SFTP)"
DESCRIPTION = (
    "Back up each host: duplicity runs on it and pushes into its chroot on the volume; "
    "the new files are then sealed (read-only for the host). Hosts run in parallel, "
    "each under its own lock; one failing stops no other. Exit non-zero if any failed."
)
EXAMPLES = """\
examples:
  dupctl backup --all
  dupctl backup web1 db1 --full    # full backups now, even if not due
  dupctl backup --missed           # what cron runs at boot and hourly
  dupctl backup --all --json | jq -r '.[] | select(.result != "ok") | .host'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="hosts of the inventory")
    parser.add_argument("--all", action="store_true", help="every host of the inventory")
    parser.add_argument(
        "--missed",
        action="store_true",
        help="the hosts whose scheduled backup was missed (cron runs this at boot and hourly)",
    )
    parser.add_argument("--full", action="store_true", help="a full backup (default: when due)")
    parser.add_argument(
        "--jobs", type=whole(1, 64), default=2, metavar="N", help="hosts at once (default 2)"
    )
    parser.add_argument(
        "--retry-delay",
        type=whole(0, 3600),
        metavar="SECONDS",
        help="between duplicity's 5 attempts of a failed transfer (default 30)",
    )
    add_connect_timeout(parser)
    parser.add_argument("--json", action="store_true", help="the summary as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import preload, remote
    from agent.actions.backup import BackupOptions, backup_hosts

    require_root("backup")
    if bool(args.hosts) + args.all + args.missed != 1:
        raise UsageError(
            "name the hosts to back up, or --all, or --missed (one of them)",
            hint="dupctl backup --all",
        )
    options = BackupOptions(
        full=args.full, jobs=args.jobs, retry_delay=args.retry_delay, missed=args.missed
    )
    ssh = remote.Ssh.of_server(paths, args.timeout)
    if sys.stdout.isatty() and not args.json:
        from agent import render

        with render.backup_progress() as show:
            outcomes = backup_hosts(paths, args.hosts, options, ssh, show)
    else:
        if not args.json:
            preload.want("agent.render")  # for the summary, while the hosts are backed up
        outcomes = backup_hosts(
            paths,
            args.hosts,
            options,
            ssh,
            lambda host, text: None if args.json else say(f"{host}: {text}"),
        )
    records = [dataclasses.asdict(outcome.record) for outcome in outcomes]
    if not outcomes and not args.json:
        say("no missed scheduled backups")
    elif args.json:
        print(json.dumps(records, indent=2))
    else:
        from agent import render

        render.print_backup_summary(records)
    errors = [outcome.error for outcome in outcomes if outcome.error]
    for error in errors:
        print(f"dupctl: error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"dupctl: hint: {error.hint}", file=sys.stderr)
    codes = {error.exit_code for error in errors}
    return (codes.pop() if len(codes) == 1 else 1) if errors else 0
