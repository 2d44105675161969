"""dupctl restore: bring a host's files back, here or onto the host, never overwriting any."""

from __future__ import annotations

import argparse
import os

from agent import remote
from agent.actions.restore import restore
from agent.commands.common import add_time_option, require_root, say
from agent.paths import ServerPaths

HELP = "restore a host's files here or onto the host; never overwrites"
DESCRIPTION = (
    "--to DIR: into DIR (missing or empty) on this server, P below it; "
    "--to-host: in place on the host (P must not exist), or into its --to DIR."
)
EXAMPLES = """\
examples:
  dupctl restore web1 --to /root/web1         # everything, on this server
  dupctl restore web1 --path /etc/nginx/nginx.conf --time 3D --to /root/then
  dupctl restore web1 --path /var/www/html/index.html --to-host   # in place
  dupctl restore web1 --path /etc/nginx --to-host --to /root/nginx-restored
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument(
        "--path", metavar="P", help="an absolute path as on the host (default: all)"
    )
    add_time_option(parser)
    parser.add_argument("--to", metavar="DIR")
    parser.add_argument("--to-host", action="store_true")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    require_root("restore")
    to = args.to if args.to is None or args.to_host else os.path.abspath(args.to)
    ssh = remote.Ssh.of_server(paths)
    restore(
        paths, ssh, args.host, path=args.path, time=args.time, to=to, to_host=args.to_host, say=say
    )
    return 0
