"""dupctl init: bring the server to its initialised state from its volume (every boot)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from agent.commands.common import number, require_root, say
from agent.errors import UsageError
from agent.paths import ServerPaths
from agent.stack_env import MODES, read_stack_env

DEFAULT_WAIT = 300.0
HELP = "set up the server from its volume (idempotent, safe at every boot)"
DESCRIPTION = (
    "Lock the metadata service to root; wait for the backup volume; format it only "
    "if it is blank (create mode; restore mode never formats); mount it by UUID; "
    "generate the backup keys and escrow them on the volume with the passcode, or "
    "restore them from that escrow; write dup_vars.sh, the fstab entry and the "
    "default schedule; shred the passcode file. Reruns change nothing."
)
EXAMPLES = """\
examples:
  dupctl init                      # mode and volume ID from stack.env
  dupctl init --passcode-file -    # read the passcode from stdin (or type it)
  dupctl init --mode restore --device /dev/vdc
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=MODES, help="default: DUPSTACK_MODE in stack.env")
    parser.add_argument("--volume-id", help="Cinder volume ID (default: from stack.env)")
    parser.add_argument(
        "--device", type=Path, help="the volume's device (default: by-id link, then /dev/vdb)"
    )
    parser.add_argument(
        "--wait",
        type=number(0, 86400, "a number of seconds"),
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help=f"how long to wait for the device (default {DEFAULT_WAIT:g})",
    )
    parser.add_argument(
        "--passcode-file",
        type=Path,
        help="root-only file holding the passcode, '-' for stdin; shredded after success "
        "(default /run/dupstack/passcode, written by cloud-init)",
    )
    parser.add_argument("--etc-dir", type=Path, help="keys folder (default /etc/duplicity)")
    parser.add_argument("--mount-point", type=Path, help="default /mnt/vdb")
    parser.add_argument("--fstab", type=Path, help="default /etc/fstab")
    parser.add_argument("--cron-dir", type=Path, help="default /etc/cron.d")


def run(args: argparse.Namespace, paths: ServerPaths) -> int:
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
    require_root("init")
    from agent.actions.init import InitOptions, run_init  # ~0.1 s: not for other commands

    options = InitOptions(
        mode=mode,
        volume_id=args.volume_id or stack.get("DUPSTACK_VOLUME_ID"),
        device=args.device,
        wait=args.wait,
        passcode_source=str(paths.passcode_file),
    )
    run_init(paths, options, say=say)
    return 0
