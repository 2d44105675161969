"""dupctl: the dupstack agent on the backup server.

The parser is assembled from agent/commands (one module per command); this module keeps the
error boundary: errors are one line plus a hint; tracebacks only with --debug. Exit codes:
docs/dupctl.md.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from agent.commands import COMMANDS, Group, load
from agent.commands.common import HelpFormatter, debug_option
from agent.entry import lacking
from agent.errors import DupstackError, VolumeReadOnly, read_only_volume
from agent.paths import ServerPaths

EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug, not an operator error


def _version() -> str:
    """The installed release, from its metadata: dupstack-agent on a server, dupstack in a
    development install (the version lives in pyproject.toml)."""
    import importlib.metadata  # ~30 ms: only for --version, never for every command's start

    for distribution in ("dupstack-agent", "dupstack"):
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown (not installed)"


class _Version(argparse.Action):
    """--version, which reads the release only when it is asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show dupctl's version and exit")  # fmt: skip

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(f"dupctl {_version()}")
        parser.exit()


def _add_command(subparsers: argparse._SubParsersAction, name: str, command: str | Group) -> None:
    """Add `name` under `subparsers`: a command module (by name), or a group and its actions."""
    if isinstance(command, Group):
        group = subparsers.add_parser(
            name,
            parents=[debug_option(argparse.SUPPRESS)],
            help=command.help,
            description=command.description,
            epilog=command.examples,
            formatter_class=command.formatter,
        )
        actions = group.add_subparsers(dest=f"{name}_command", required=True, metavar="ACTION")
        for action, module in command.actions.items():
            _add_command(actions, action, module)
        return
    _add_module(subparsers, name, load(command))


def _add_module(subparsers: argparse._SubParsersAction, name: str, command: ModuleType) -> None:
    parser = subparsers.add_parser(
        name,
        parents=[debug_option(argparse.SUPPRESS)],
        help=command.HELP,
        description=getattr(command, "DESCRIPTION", None),
        epilog=command.EXAMPLES,
        formatter_class=getattr(command, "FORMATTER", HelpFormatter),
    )
    command.add_arguments(parser)
    parser.set_defaults(handler=command.run)


def _named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names, when it is known and only dupctl's own options come before
    it; else None (--help, --version, a typo, an abbreviated option: the whole parser)."""
    args = iter(argv)
    for arg in args:
        if arg == "--debug" or arg.startswith("--root="):
            continue
        if arg == "--root":
            next(args, None)
            continue
        return arg if arg in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """dupctl's parser; given the arguments, only the command they name is added, so a run
    imports that command's modules alone (the others cost ~0.1 s per run); every command's
    own parsing, usage and errors are those of the whole parser."""
    parser = argparse.ArgumentParser(
        prog="dupctl",
        description="dupstack agent on the backup server (exit codes: docs/dupctl.md).",
        parents=[debug_option(False)],
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("DUPSTACK_ROOT", "/")),
        help="prefix of every server path, for tests (env DUPSTACK_ROOT; default /)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    named = None if argv is None else _named_command(argv)
    for name, command in COMMANDS.items():
        if named in (None, name):
            _add_command(commands, name, command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a name with bytes that are not UTF-8 prints
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
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
    except ModuleNotFoundError as missing:  # loaded by the command (paramiko, boto3...)
        return lacking(missing)
    except Exception as error:
        if args.debug:
            traceback.print_exc()
        if isinstance(error, OSError) and error.errno == errno.EROFS:  # a volume went read-only
            where = error.filename or "a file system"
            print(f"dupctl: error: {where} is on a read-only file system ({error.strerror})",
                  file=sys.stderr)  # fmt: skip
            print(f"dupctl: hint: {read_only_volume('').hint}", file=sys.stderr)
            return VolumeReadOnly.exit_code
        print(f"dupctl: internal error: {error!r}", file=sys.stderr)
        print("dupctl: hint: rerun with --debug for the traceback", file=sys.stderr)
        return EXIT_INTERNAL
