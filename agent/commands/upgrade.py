"""dupctl upgrade: install another release beside this one, switch only once it runs."""

from __future__ import annotations

import argparse

from agent.commands.common import require_root, say
from agent.paths import ServerPaths

HELP = "install another dupstack release beside this one, then switch to it"
DESCRIPTION = (
    "Install dupstack-agent VERSION (wheel sha256 H; its dependencies are locked by "
    "hash) into /opt/dupstack/releases/VERSION and switch /opt/dupstack/current to "
    "it once it runs. Keys, inventory, backups, schedule and host key pins stay. "
    "A failed upgrade leaves this release running."
)
# As it always was: the description is printed as one line, not filled.
FORMATTER = argparse.RawDescriptionHelpFormatter
EXAMPLES = """\
examples:
  dupctl upgrade --version 0.2.0 --sha256 $(cat dupstack_agent-0.2.0.sha256)
  dupctl upgrade --version 0.2.0 --sha256 H --index-url https://mirror/simple
  dupctl upgrade --version 0.1.0 --sha256 H   # roll back to the kept release
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", required=True, metavar="VERSION")
    parser.add_argument("--sha256", required=True, metavar="H", help="of the wheel")
    parser.add_argument(
        "--index-url", metavar="URL", help="default: the index in /etc/dupstack/install.env"
    )
    parser.add_argument("--wheelhouse-url", metavar="URL", help="instead of an index")
    parser.add_argument("--wheelhouse-sha256", metavar="H")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.upgrade import Release, upgrade

    require_root("upgrade")
    release = Release(
        args.version, args.sha256, args.index_url, args.wheelhouse_url, args.wheelhouse_sha256
    )
    previous = upgrade(paths, release, say)
    say(f"upgraded {previous} -> {args.version}; {previous} is kept for a rollback")
    return 0
