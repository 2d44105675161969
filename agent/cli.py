"""dupctl: the dupstack agent on the backup server.

Errors are one line plus a hint; tracebacks only with --debug. Exit codes: docs/dupctl.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from agent.actions.init import MODES, InitOptions, run_init
from agent.errors import DupstackError, UsageError
from agent.paths import ServerPaths
from agent.stack_env import read_stack_env

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not an operator error
DEFAULT_WAIT = 300.0


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
    if os.geteuid() != 0:
        raise UsageError("dupctl init must run as root", hint="sudo dupctl init")
    options = InitOptions(
        mode=mode,
        volume_id=args.volume_id or stack.get("DUPSTACK_VOLUME_ID"),
        device=args.device,
        wait=args.wait,
        passcode_source=str(paths.passcode_file),
    )
    run_init(paths, options, say=lambda line: print(line, flush=True))
    return 0


def _debug_option(default: object) -> argparse.ArgumentParser:
    """--debug, accepted before and after the command (the command's must not reset it)."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument(
        "--debug", action="store_true", default=default, help="log every step; tracebacks"
    )
    return option


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dupctl",
        description="dupstack agent on the backup server (exit codes: docs/dupctl.md).",
        parents=[_debug_option(False)],
    )
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
    return parser


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
