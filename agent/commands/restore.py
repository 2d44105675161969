"""dupctl restore: bring a host's files back, here or onto the host, never overwriting any."""

from __future__ import annotations

import argparse
import os

from agent.commands.common import add_time_option, require_root, say, whole
from agent.errors import UsageError
from agent.paths import ServerPaths

HELP = "restore a host's files (here or onto the host) or a database; never overwrites"
DESCRIPTION = (
    "--to DIR: into DIR (missing or empty) on this server, P below it; "
    "--to-host: in place on the host (P must not exist), or into its --to DIR. "
    "--database NAME: the dump of one of the host's `databases:` loaded into a new database "
    "there (--into NEW; default NAME_restored_TIME); SQLite and `all` dumps become a new file "
    "on the host (--into FILE)."
)
EXAMPLES = """\
examples:
  dupctl restore web1 --to /root/web1         # everything, on this server
  dupctl restore web1 --path /etc/nginx/nginx.conf --time 3D --to /root/then
  dupctl restore web1 --path /var/www/html/index.html --to-host   # in place
  dupctl restore web1 --path /etc/nginx --to-host --to /root/nginx-restored
  dupctl restore db1 --database shop --time 2D          # into shop_restored_<now>
  dupctl restore db1 --database postgresql:shop --into shop_copy
  dupctl restore db1 --database app --into /srv/app/app.db.restored   # sqlite
  dupctl restore web1 --from glacier --path /etc/hosts --to /root/r            # offsite
  dupctl restore web1 --from glacier --to /root/r --thaw bulk --days 3 --no-wait
  dupctl restore web1 --from glacier --path /etc/nginx --to-host --thaw standard
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", metavar="HOST")
    parser.add_argument(
        "--path", metavar="P", help="an absolute path as on the host (default: all)"
    )
    add_time_option(parser)
    parser.add_argument("--to", metavar="DIR")
    parser.add_argument("--to-host", action="store_true")
    parser.add_argument(
        "--database", metavar="NAME", help="a database the host dumps (NAME or TYPE:NAME)"
    )
    parser.add_argument(
        "--into", metavar="NEW", help="with --database: the new database (or file) it goes into"
    )
    offsite = parser.add_argument_group(
        "from an offsite copy (onto this server with --to DIR, or onto the host with --to-host)"
    )
    offsite.add_argument(
        "--from",
        dest="source",
        metavar="TARGET",
        help="read the sets from this offsite target, not the volume",
    )
    offsite.add_argument(
        "--thaw",
        choices=("bulk", "standard", "expedited"),
        help="request archived volumes back (only those needed) in this tier",
    )
    offsite.add_argument(
        "--days",
        type=whole(1, 365),
        default=3,
        help="how long thawed copies stay readable (default 3)",
    )
    offsite.add_argument("--no-wait", action="store_true",
                         help="request the thaw and return with its ETA (exit 18)")  # fmt: skip


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
    from agent import remote
    from agent.actions.restore import restore
    from agent.actions.restore_database import restore_database
    from agent.actions.restore_offsite import restore_offsite

    require_root("restore")
    if args.database is None and args.into is not None:
        raise UsageError("--into goes with --database (files: --to DIR)")
    if args.database is not None:
        if args.path or args.to or args.to_host:
            raise UsageError("--database restores a dump: --path, --to and --to-host are for files")
        restore_database(
            paths, remote.Ssh.of_server(paths), args.host, database=args.database,
            time=args.time, into=args.into, say=say,
        )  # fmt: skip
        return 0
    to = args.to if args.to is None or args.to_host else os.path.abspath(args.to)
    if args.source is not None:
        restore_offsite(
            paths, args.host, args.source, path=args.path, time=args.time, to=to,
            to_host=args.to_host, ssh=remote.Ssh.of_server(paths) if args.to_host else None,
            thaw=args.thaw, days=args.days, wait=not args.no_wait, say=say,
        )  # fmt: skip
        return 0
    if args.thaw or args.no_wait:
        raise UsageError("--thaw and --no-wait go with --from TARGET")
    ssh = remote.Ssh.of_server(paths)
    restore(
        paths, ssh, args.host, path=args.path, time=args.time, to=to, to_host=args.to_host, say=say
    )
    return 0
