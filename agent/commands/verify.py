"""dupctl verify: on the host, check its backup against the manifests (and its files)."""

from __future__ import annotations

import argparse

from agent.commands.common import add_time_option, require_root, say
from agent.paths import ServerPaths

HELP = "on the host: check its backup (and compare its files)"
EXAMPLES = """\
examples:
  dupctl verify web1
  dupctl verify web1 --compare-data    # and list what changed on the host
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("--compare-data", action="store_true", help="compare with the files")
    add_time_option(parser)


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import remote
    from agent.actions.verify import verify

    require_root("verify")
    ssh = remote.Ssh.of_server(paths)
    verify(paths, ssh, args.host, compare_data=args.compare_data, time=args.time, say=say)
    return 0
