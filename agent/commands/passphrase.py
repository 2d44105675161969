"""dupctl passphrase: print a host's backup passphrase, for running duplicity by hand."""

from __future__ import annotations

import argparse
import sys

from agent.commands.common import say
from agent.paths import ServerPaths

HELP = "print a host's backup passphrase (a secret; root only)"
DESCRIPTION = (
    "Print the passphrase that encrypts HOST's backups, derived from this server's\n"
    "stack secret (docs/backups-design.md). The passphrase alone goes to stdout,\n"
    "a warning that it is a secret to stderr."
)
EXAMPLES = """\
examples:
  dupctl passphrase web1
  # duplicity by hand: the passphrase travels in the environment, never in argv
  export PASSPHRASE="$(dupctl passphrase web1)"
  duplicity collection-status file:///mnt/vdb/hosts/dup-web1/backups
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST", help="a host of /etc/duplicity/dupstack.yaml")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent.actions.passphrase import run_passphrase

    run_passphrase(paths, args.host, say=say, warn=lambda line: print(line, file=sys.stderr))
    return 0
