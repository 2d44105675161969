"""dupctl: the dupstack agent on the backup server.

Errors are one line plus a hint; tracebacks only with --debug. Exit codes: docs/dupctl.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent import remote
from agent.actions.backup import BackupOptions, backup_hosts
from agent.actions.host_add import HostRequest, add_host
from agent.actions.host_list import list_hosts
from agent.actions.host_remove import remove_host
from agent.actions.init import MODES, InitOptions, run_init
from agent.actions.list_files import list_files
from agent.actions.passphrase import run_passphrase
from agent.actions.prune import prune
from agent.actions.restore import restore
from agent.actions.schedule import apply_schedule, show_schedule
from agent.actions.status import hosts_status
from agent.actions.upgrade import Release, upgrade
from agent.actions.verify import verify
from agent.errors import DupstackError, UsageError
from agent.paths import ServerPaths
from agent.stack_env import read_stack_env

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not an operator error
DEFAULT_WAIT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0


def _init_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    overrides = {
        name: value
        for name in ("etc_dir", "mount_point", "fstab", "cron_dir", "passcode_file")
        if (value := getattr(args, name)) is not None
    }
    paths = dataclasses.replace(paths, **overrides)
    stack = read_stack_env(paths.stack_env)
    mode = args.mode or stack.get("DUPSTACK_MODE")
    if mode not in MODES:
        raise UsageError(
            f"unknown mode {mode!r}" if mode else "no mode given",
            hint=f"pass --mode create|restore (or set DUPSTACK_MODE in {paths.stack_env})",
        )
    _require_root("init")
    options = InitOptions(
        mode=mode,
        volume_id=args.volume_id or stack.get("DUPSTACK_VOLUME_ID"),
        device=args.device,
        wait=args.wait,
        passcode_source=str(paths.passcode_file),
    )
    run_init(paths, options, say=_say)
    return 0


def _require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise UsageError(f"dupctl {command} must run as root", hint=f"sudo dupctl {command}")


def _say(line: str) -> None:
    print(line, flush=True)


def _host_add_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("host add")
    try:
        host_key = args.host_key.read_text() if args.host_key else None
    except OSError as error:
        raise UsageError(f"cannot read --host-key {args.host_key}: {error.strerror}") from None
    request = HostRequest(
        name=args.name,
        address=args.address,
        user=args.user,
        port=args.port,
        paths=tuple(args.paths) if args.paths else None,
        excludes=tuple(args.excludes) if args.excludes else None,
        host_key=host_key,
        accept_new_host_key=args.accept_new_host_key,
        install=args.install,
        server_address=args.server_address,
    )
    add_host(paths, request, remote.Ssh.of_server(paths, args.timeout), _say)
    return 0


def _host_list_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    hosts = list_hosts(paths, remote.Ssh.of_server(paths))
    if args.json:
        print(json.dumps(hosts, indent=2))
        return 0
    table = Table(box=None)
    for column in ("name", "address", "user", "port", "paths", "excludes", "host key"):
        table.add_column(column, overflow="fold")  # wrap: never cut a fingerprint
    for host in hosts:
        table.add_row(
            host["name"],
            host["address"],
            host["user"],
            str(host["port"]),
            " ".join(host["paths"]),
            " ".join(host["excludes"]),
            host["host_key"] or "not pinned",
        )
    Console(soft_wrap=True).print(table if hosts else "no hosts: add one with dupctl host add")
    return 0


def _host_remove_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("host remove")
    if args.purge and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(
                f"--purge deletes every backup of {args.name}",
                hint="add --yes to confirm",
            )
        typed = input(f"delete every backup of {args.name}? type its name to confirm: ")
        if typed.strip() != args.name:
            raise UsageError("not confirmed: nothing was changed")
    remove_host(paths, remote.Ssh.of_server(paths), args.name, args.purge, _say)
    return 0


def _debug_option(default: object) -> argparse.ArgumentParser:
    """--debug, accepted before and after the command (the command's must not reset it)."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument(
        "--debug", action="store_true", default=default, help="log every step; tracebacks"
    )
    return option


def _add_connect_timeout(parser: argparse.ArgumentParser) -> None:
    """--timeout for the commands that connect to tenant hosts over SSH."""
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"SSH connect timeout (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )


def _version() -> str:
    """The installed release, from its metadata: dupstack-agent on a server, dupstack in a
    development install (the version lives in pyproject.toml)."""
    for distribution in ("dupstack-agent", "dupstack"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dupctl",
        description="dupstack agent on the backup server (exit codes: docs/dupctl.md).",
        parents=[_debug_option(False)],
    )
    parser.add_argument("--version", action="version", version=f"dupctl {_version()}")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("DUPSTACK_ROOT", "/")),
        help="prefix of every server path, for tests (env DUPSTACK_ROOT; default /)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = commands.add_parser(
        "init",
        parents=[_debug_option(argparse.SUPPRESS)],
        help="set up the server from its volume (idempotent, safe at every boot)",
        description=(
            "Lock the metadata service to root; wait for the backup volume; format it only "
            "if it is blank (create mode; restore mode never formats); mount it by UUID; "
            "generate the backup keys and escrow them on the volume with the passcode, or "
            "restore them from that escrow; write dup_vars.sh, the fstab entry and the "
            "default schedule; shred the passcode file. Reruns change nothing."
        ),
    )
    init.add_argument("--mode", choices=MODES, help="default: DUPSTACK_MODE in stack.env")
    init.add_argument("--volume-id", help="Cinder volume ID (default: from stack.env)")
    init.add_argument(
        "--device", type=Path, help="the volume's device (default: by-id link, then /dev/vdb)"
    )
    init.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for the device (default {DEFAULT_WAIT:g})",
    )
    init.add_argument(
        "--passcode-file",
        type=Path,
        help="root-only file holding the passcode, '-' for stdin; shredded after success "
        "(default /run/dupstack/passcode, written by cloud-init)",
    )
    init.add_argument("--etc-dir", type=Path, help="keys folder (default /etc/duplicity)")
    init.add_argument("--mount-point", type=Path, help="default /mnt/vdb")
    init.add_argument("--fstab", type=Path, help="default /etc/fstab")
    init.add_argument("--cron-dir", type=Path, help="default /etc/cron.d")
    init.set_defaults(handler=_init_command)
    _add_host_commands(commands)
    _add_passphrase_command(commands)
    _add_backup_commands(commands)
    _add_restore_commands(commands)
    _add_schedule_commands(commands)
    _add_upgrade_command(commands)
    return parser


def _add_host_commands(commands: argparse._SubParsersAction) -> None:
    debug = _debug_option(argparse.SUPPRESS)
    host = commands.add_parser(
        "host", parents=[debug], help="tenant hosts to back up: add, list, remove"
    )
    actions = host.add_subparsers(dest="host_command", required=True, metavar="ACTION")
    add = actions.add_parser(
        "add",
        parents=[debug],
        help="make a tenant host ready for backups (idempotent)",
        description=(
            "Create the host's chrooted SFTP account dup-NAME and its folder on the volume, "
            "pin the host's SSH key (first seen, or --host-key), log in to it with this "
            "server's key, check duplicity >= 3 there, give it its SFTP key and this server's "
            "pinned key, probe SFTP from the host, and record it in the inventory. "
            "Reruns change nothing."
        ),
    )
    add.add_argument("name", help="the host's name (becomes the account dup-NAME)")
    add.add_argument("--address", required=True, help="where this server reaches the host")
    add.add_argument("--user", help="admin user to log in as (default root; else sudo -n)")
    add.add_argument("--port", type=int, help="the host's SSH port (default 22)")
    add.add_argument(
        "--path", dest="paths", action="append", metavar="PATH", help="back up PATH (repeat)"
    )
    add.add_argument(
        "--exclude", dest="excludes", action="append", metavar="PATTERN", help="leave out (repeat)"
    )
    add.add_argument(
        "--host-key",
        type=Path,
        metavar="FILE",
        help="the host's SSH public key (e.g. its ssh_host_ed25519_key.pub): pin this one, "
        "replacing any pin (default: pin the key it offers the first time)",
    )
    add.add_argument(
        "--accept-new-host-key",
        action="store_true",
        help="when the host's address changes: pin the key it offers at the new one (shown "
        "first without this flag)",
    )
    add.add_argument(
        "--install",
        action="store_true",
        help="install duplicity on the host if it lacks it (a venv in /opt/dupstack-client)",
    )
    add.add_argument(
        "--server-address",
        metavar="ADDRESS",
        help="how hosts reach this server (needed once; default: the inventory's)",
    )
    _add_connect_timeout(add)
    add.set_defaults(handler=_host_add_command)

    listing = actions.add_parser("list", parents=[debug], help="the inventory's hosts")
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(handler=_host_list_command)

    remove = actions.add_parser(
        "remove",
        parents=[debug],
        help="forget a host: account, SFTP key, pin, inventory entry",
        description="Remove the host's account, SFTP key, host key pin and inventory entry. "
        "Its backups stay on the volume unless --purge.",
    )
    remove.add_argument("name")
    remove.add_argument("--purge", action="store_true", help="also delete its backups")
    remove.add_argument("--yes", action="store_true", help="confirm --purge without asking")
    remove.set_defaults(handler=_host_remove_command)


def _passphrase_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    run_passphrase(paths, args.host, say=_say, warn=lambda line: print(line, file=sys.stderr))
    return 0


def _add_passphrase_command(commands: argparse._SubParsersAction) -> None:
    passphrase = commands.add_parser(
        "passphrase",
        parents=[_debug_option(argparse.SUPPRESS)],
        help="print a host's backup passphrase (a secret; root only)",
        description=(
            "Print the passphrase that encrypts HOST's backups, derived from this server's\n"
            "stack secret (docs/backups-design.md). The passphrase alone goes to stdout,\n"
            "a warning that it is a secret to stderr."
        ),
        epilog=(
            "examples:\n"
            "  dupctl passphrase web1\n"
            "  # duplicity by hand: the passphrase travels in the environment, never in argv\n"
            '  export PASSPHRASE="$(dupctl passphrase web1)"\n'
            "  duplicity collection-status file:///mnt/vdb/hosts/dup-web1/backups"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    passphrase.add_argument("host", metavar="HOST", help="a host of /etc/duplicity/dupstack.yaml")
    passphrase.set_defaults(handler=_passphrase_command)


def _backup_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("backup")
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
        columns = (
            SpinnerColumn(),
            TextColumn("{task.fields[host]}"),
            TextColumn("{task.description}"),
        )
        with Progress(*columns, TimeElapsedColumn(), transient=True) as progress:
            tasks: dict[str, TaskID] = {}

            def show(host: str, text: str) -> None:
                if host in tasks:
                    progress.update(tasks[host], description=text)
                else:
                    tasks[host] = progress.add_task(text, host=host)

            outcomes = backup_hosts(paths, args.hosts, options, ssh, show)
    else:
        outcomes = backup_hosts(
            paths,
            args.hosts,
            options,
            ssh,
            lambda host, text: None if args.json else _say(f"{host}: {text}"),
        )
    records = [dataclasses.asdict(outcome.record) for outcome in outcomes]
    if not outcomes and not args.json:
        _say("no missed scheduled backups")
    elif args.json:
        print(json.dumps(records, indent=2))
    else:
        table = Table(box=None)
        for column in ("host", "result", "action", "duration", "error"):
            table.add_column(column, overflow="fold")
        for run in records:
            duration = f"{run['duration']:.1f} s"
            table.add_row(
                run["host"], run["result"], run["action"] or "-", duration, run["error"] or ""
            )
        _print_table(table)
    errors = [outcome.error for outcome in outcomes if outcome.error]
    for error in errors:
        print(f"dupctl: error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"dupctl: hint: {error.hint}", file=sys.stderr)
    codes = {error.exit_code for error in errors}
    return (codes.pop() if len(codes) == 1 else 1) if errors else 0


def _minute(moment: str | None) -> str | None:
    """`2026-11-22 03:53` from `2026-11-22T03:53:18Z`."""
    return moment and moment[:16].replace("T", " ")


def _print_table(table: Table) -> None:
    """A table on a terminal's width; piped, one line per row (no wrapping at 80)."""
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 1000).print(table)


def _status_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("status")
    entries = hosts_status(paths, args.hosts)
    if args.json:
        print(json.dumps(entries, indent=2))
    else:
        table = Table(box=None)
        for column in ("host", "last run", "result", "chain", "chains", "sets", "size",
                       "last full", "next full", "next run", "error"):  # fmt: skip
            table.add_column(column, overflow="fold")
        for entry in entries:
            run = entry["last_run"] or {}
            size = entry.get("size")
            table.add_row(
                entry["host"],
                _minute(run.get("end")) or "never",
                run.get("result", "-"),
                *(str(entry.get(key, "-")) for key in ("chain_length", "chains", "sets")),
                f"{size // 1024} KiB" if size is not None else "-",
                _minute(entry.get("last_full")) or "-",
                _minute(entry.get("next_full")) or "-",
                _minute(entry["schedule"]["next_backup"]) or "not scheduled",
                entry["error"] or run.get("error") or "",
            )
        _print_table(table)
    return 1 if any(entry["error"] for entry in entries) else 0


def _add_backup_commands(commands: argparse._SubParsersAction) -> None:
    debug = _debug_option(argparse.SUPPRESS)
    backup = commands.add_parser(
        "backup",
        parents=[debug],
        help="back up tenant hosts (duplicity on each host, over SSH/SFTP)",
        description=(
            "Back up each host: duplicity runs on it and pushes into its chroot on the volume; "
            "the new files are then sealed (read-only for the host). Hosts run in parallel, "
            "each under its own lock; one failing stops no other. Exit non-zero if any failed."
        ),
    )
    backup.add_argument("hosts", nargs="*", metavar="HOST", help="hosts of the inventory")
    backup.add_argument("--all", action="store_true", help="every host of the inventory")
    backup.add_argument(
        "--missed",
        action="store_true",
        help="the hosts whose scheduled backup was missed (cron runs this at boot and hourly)",
    )
    backup.add_argument("--full", action="store_true", help="a full backup (default: when due)")
    backup.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="hosts at once (default 2)"
    )
    backup.add_argument(
        "--retry-delay",
        type=int,
        metavar="SECONDS",
        help="between duplicity's 5 attempts of a failed transfer (default 30)",
    )
    _add_connect_timeout(backup)
    backup.add_argument("--json", action="store_true", help="the summary as JSON")
    backup.set_defaults(handler=_backup_command)

    status = commands.add_parser(
        "status",
        parents=[debug],
        help="each host's last run and its sets on the volume",
        description="Read on this server (hosts may be down): last run, chains and sets "
        "(duplicity collection-status), size on the volume, last and next full backup.",
    )
    status.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.set_defaults(handler=_status_command)


def _list_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("list")
    files = list_files(paths, args.host, args.time)
    if args.json:
        shown = [{"path": path, "mtime": f"{mtime:%Y-%m-%dT%H:%M:%SZ}"} for path, mtime in files]
        print(json.dumps(shown, indent=2, ensure_ascii=False))
    for path, mtime in [] if args.json else files:
        _say(f"{mtime:%Y-%m-%d %H:%M:%S}  {path}")
    return 0


def _restore_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("restore")
    to = args.to if args.to is None or args.to_host else os.path.abspath(args.to)
    ssh = remote.Ssh.of_server(paths)
    restore(paths, ssh, args.host, path=args.path, time=args.time, to=to, to_host=args.to_host,
            say=_say)  # fmt: skip
    return 0


def _verify_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("verify")
    ssh = remote.Ssh.of_server(paths)
    verify(paths, ssh, args.host, compare_data=args.compare_data, time=args.time, say=_say)
    return 0


def _prune_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("prune")
    prune(paths, args.hosts, _say)
    return 0


def _add_restore_commands(commands: argparse._SubParsersAction) -> None:
    debug = _debug_option(argparse.SUPPRESS)
    time = {"metavar": "T", "help": "as of T: 2026-11-22T03:00:00Z, 3D (ago), epoch seconds"}
    listing = commands.add_parser("list", parents=[debug], help="the files in a host's backup")
    listing.add_argument("host", metavar="HOST")
    listing.add_argument("--time", **time)
    listing.add_argument("--json", action="store_true", help="as JSON")
    listing.set_defaults(handler=_list_command)

    back = commands.add_parser(
        "restore",
        parents=[debug],
        help="restore a host's files here or onto the host; never overwrites",
        description="--to DIR: into DIR (missing or empty) on this server, P below it; "
        "--to-host: in place on the host (P must not exist), or into its --to DIR.",
    )
    back.add_argument("host", metavar="HOST")
    back.add_argument("--path", metavar="P", help="an absolute path as on the host (default: all)")
    back.add_argument("--time", **time)
    back.add_argument("--to", metavar="DIR")
    back.add_argument("--to-host", action="store_true")
    back.set_defaults(handler=_restore_command)

    check = commands.add_parser(
        "verify", parents=[debug], help="on the host: check its backup (and compare its files)"
    )
    check.add_argument("host", metavar="HOST")
    check.add_argument("--compare-data", action="store_true", help="compare with the files")
    check.add_argument("--time", **time)
    check.set_defaults(handler=_verify_command)

    trim = commands.add_parser(
        "prune", parents=[debug], help="apply keep_full and remove_older_than, clean up"
    )
    trim.add_argument("hosts", nargs="*", metavar="HOST", help="default: every host")
    trim.set_defaults(handler=_prune_command)


def _schedule_show_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("schedule show")
    schedule = show_schedule(paths)
    if args.json:
        print(json.dumps(schedule, indent=2))
    else:
        table = Table(box=None)
        for column in ("job", "host", "when", "cron", "next run", "last run", "full every"):
            table.add_column(column, overflow="fold")
        for job in schedule["jobs"]:
            last = job.get("last_run")
            table.add_row(
                job["job"],
                job["host"] or "-",
                job["when"],
                job["cron"],
                (job["next_run"] or "at boot").replace("T", " "),
                f"{_minute(last['start'])} {last['result']}" if last else "-",
                job.get("full_if_older_than", ""),
            )
        _print_table(table)
    if not schedule["up_to_date"]:
        print(
            f"dupctl: warning: {schedule['crontab']} is not what the inventory says yet: "
            "`dupctl schedule apply` writes it (cron does within 5 minutes)",
            file=sys.stderr,
        )
    return 0


def _schedule_apply_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("schedule apply")
    changed = apply_schedule(paths)
    if changed or not args.quiet:
        _say(f"{paths.hosts_cron_file} {'written' if changed else 'up to date'}")
    return 0


def _add_schedule_commands(commands: argparse._SubParsersAction) -> None:
    debug = _debug_option(argparse.SUPPRESS)
    schedule = commands.add_parser(
        "schedule",
        parents=[debug],
        help="the tenant hosts' cron jobs: show, apply",
        description=(
            "Each host's `schedule:` (inventory) as lines of /etc/cron.d/dupstack-hosts; "
            "H: a value picked by the host's name (docs/dupctl.md)."
        ),
        epilog=(
            "examples:\n"
            "  dupctl schedule show\n"
            "  dupctl schedule show --json\n"
            "  # in /etc/duplicity/dupstack.yaml: web1 at 23:H, never pruned by cron\n"
            "  #   hosts: {web1: {address: 10.0.0.5, schedule: {backup: 'H 23 * * *', "
            "prune: null}}}\n"
            "  dupctl schedule apply"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", parents=[debug], help="every job and its next run")
    show.add_argument("--json", action="store_true", help="as JSON")
    show.set_defaults(handler=_schedule_show_command)
    apply = actions.add_parser(
        "apply", parents=[debug], help="rewrite the crontab from the inventory (if it changed)"
    )
    apply.add_argument("--quiet", action="store_true", help="say nothing when nothing changed")
    apply.set_defaults(handler=_schedule_apply_command)


def _upgrade_command(args: argparse.Namespace, paths: ServerPaths) -> int:
    _require_root("upgrade")
    release = Release(
        args.version, args.sha256, args.index_url, args.wheelhouse_url, args.wheelhouse_sha256
    )
    previous = upgrade(paths, release, _say)
    _say(f"upgraded {previous} -> {args.version}; {previous} is kept for a rollback")
    return 0


def _add_upgrade_command(commands: argparse._SubParsersAction) -> None:
    upgrade_parser = commands.add_parser(
        "upgrade",
        parents=[_debug_option(argparse.SUPPRESS)],
        help="install another dupstack release beside this one, then switch to it",
        description=(
            "Install dupstack-agent VERSION (wheel sha256 H; its dependencies are locked by "
            "hash) into /opt/dupstack/releases/VERSION and switch /opt/dupstack/current to "
            "it once it runs. Keys, inventory, backups, schedule and host key pins stay. "
            "A failed upgrade leaves this release running."
        ),
        epilog=(
            "examples:\n"
            "  dupctl upgrade --version 0.2.0 --sha256 $(cat dupstack_agent-0.2.0.sha256)\n"
            "  dupctl upgrade --version 0.2.0 --sha256 H --index-url https://mirror/simple\n"
            "  dupctl upgrade --version 0.1.0 --sha256 H   # roll back to the kept release"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    upgrade_parser.add_argument("--version", required=True, metavar="VERSION")
    upgrade_parser.add_argument("--sha256", required=True, metavar="H", help="of the wheel")
    upgrade_parser.add_argument(
        "--index-url", metavar="URL", help="default: the index in /etc/dupstack/install.env"
    )
    upgrade_parser.add_argument("--wheelhouse-url", metavar="URL", help="instead of an index")
    upgrade_parser.add_argument("--wheelhouse-sha256", metavar="H")
    upgrade_parser.set_defaults(handler=_upgrade_command)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="dupctl: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.handler(args, ServerPaths.from_root(args.root))
    except DupstackError as error:
        if args.debug:
            traceback.print_exc()
        print(f"dupctl: error: {error.message}", file=sys.stderr)
        if error.hint:
            print(f"dupctl: hint: {error.hint}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        print(f"dupctl: internal error: {error!r}", file=sys.stderr)
        print("dupctl: hint: rerun with --debug for the traceback", file=sys.stderr)
        return EXIT_INTERNAL
