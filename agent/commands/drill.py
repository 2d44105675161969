"""dupctl drill: a restore drill of a host's latest set (a sample restored and compared)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from agent.commands.common import percent, require_root, say, whole
from agent.errors import DrillFailed
from agent.paths import ServerPaths

HELP = "restore a sample of a host's latest set here and compare it with the host's files"
DESCRIPTION = (
    "A random sample of the latest set's files is restored on this server and hashed "
    "against the host's own where they are unchanged since the backup (size and mtime); "
    "the host's file count now must be within --count-tolerance of the set's. Exit 15 "
    "when the drill fails; the result is in `dupctl status` and the metrics."
)
EXAMPLES = """\
examples:
  dupctl drill web1
  dupctl drill web1 --sample-percent 20 --max-files 1000
  dupctl drill web1 --json
"""


# what the weekly cron drill uses too (it runs `dupctl drill HOST`)
SAMPLE_PERCENT = 5.0
MAX_FILES = 200
COUNT_TOLERANCE = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument(
        "--sample-percent",
        type=percent(0.001, 100),
        metavar="P",
        default=SAMPLE_PERCENT,
        help=f"of the set's files (default {SAMPLE_PERCENT:g})",
    )
    parser.add_argument(
        "--max-files",
        type=whole(1, 1_000_000),
        metavar="N",
        default=MAX_FILES,
        help=f"at most N files restored (default {MAX_FILES})",
    )
    parser.add_argument(
        "--count-tolerance",
        type=percent(0, 100),
        metavar="PCT",
        default=COUNT_TOLERANCE,
        help="how far apart, in percent, the host's file count may be from the set's "
        f"(default {COUNT_TOLERANCE:g})",
    )
    parser.add_argument("--json", action="store_true", help="the result as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import remote
    from agent.actions.drill import DrillOptions, drill

    require_root("drill")
    options = DrillOptions(args.sample_percent, args.max_files, args.count_tolerance)
    progress = (lambda line: None) if args.json else say  # stdout is the JSON alone
    record = drill(paths, remote.Ssh.of_server(paths), args.host, options, say=progress)
    if args.json:
        print(json.dumps(asdict(record), indent=2))
    else:
        print(
            f"drill {record.host}: {record.result} (set {record.set_time}): "
            f"{record.sampled} restored, {record.compared} compared, {record.changed} "
            f"changed on the host since; {record.files_in_set} files in the set, "
            f"{record.files_on_host if record.files_on_host is not None else '?'} on the host"
        )
    if record.result != "pass":
        raise DrillFailed(
            f"drill of {record.host} failed: "
            + "; ".join(record.failures[:5])
            + (f" (and {len(record.failures) - 5} more)" if len(record.failures) > 5 else ""),
            hint=f"see {record.log}; a damaged set: `dupctl verify {record.host}`, then a "
            f"new full with `dupctl backup --full {record.host}`",
        )
    return 0
