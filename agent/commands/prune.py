"""dupctl prune: apply each host's retention on this server, under the host's lock."""

from __future__ import annotations

import argparse

from agent.commands.common import require_root, say
from agent.paths import ServerPaths

HELP = "apply keep_full and remove_older_than, clean up"
EXAMPLES = """\
examples:
  dupctl prune              # every host
  dupctl prune web1 db1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.prune import prune

    require_root("prune")
    prune(paths, args.hosts, say)
    return 0
