"""dupctl host list: the inventory's hosts with their pinned keys, for people or for jq."""

from __future__ import annotations

import argparse
import json

from agent.paths import ServerPaths

HELP = "the inventory's hosts"
EXAMPLES = """\
examples:
  dupctl host list
  dupctl host list --json | jq -r '.[].name'
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="as JSON")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import remote, render
    from agent.actions.host_list import list_hosts

    hosts = list_hosts(paths, remote.Ssh.of_server(paths))
    if args.json:
        print(json.dumps(hosts, indent=2))
    else:
        render.print_hosts(hosts)
    return 0
