"""Command-line entry points: `dupstack COMMAND ...` and one script per command (stack-start...).

Errors become one line plus a hint and a non-zero exit; tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from types import ModuleType

from rich.markup import escape

from provisioner.commands import (
    stack_connect,
    stack_delete,
    stack_get_url,
    stack_offsite,
    stack_start,
    stack_status,
)
from provisioner.console import err
from provisioner.errors import DupstackError

COMMANDS: dict[str, ModuleType] = {
    "stack-start": stack_start,
    "stack-get-url": stack_get_url,
    "stack-status": stack_status,
    "stack-connect": stack_connect,
    "stack-delete": stack_delete,
    "stack-offsite": stack_offsite,
}
EXIT_CODES = """\
exit codes: 0 done, 1 error, 2 bad usage, 3 not found / pre-flight failed,
            4 stack failed, 5 timed out, 130 interrupted
credentials: clouds.yaml with --os-cloud NAME or OS_CLOUD, or the OS_* variables of an openrc
"""


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--os-cloud",
        default=os.environ.get("OS_CLOUD"),
        metavar="CLOUD",
        help="cloud name in clouds.yaml (default: $OS_CLOUD, else OS_* variables)",
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks and API calls")
    return common


def _configure(parser: argparse.ArgumentParser, module: ModuleType) -> argparse.ArgumentParser:
    module.add_arguments(parser)
    parser.set_defaults(run=module.run)
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command run as its own script (e.g. `stack-start`)."""
    module = COMMANDS[name]
    parser = argparse.ArgumentParser(
        prog=name,
        description=module.__doc__,
        epilog=module.EXAMPLES + "\n" + EXIT_CODES,
        parents=[_common_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return _configure(parser, module)


def main_parser() -> argparse.ArgumentParser:
    """The `dupstack` parser, with every command as a subcommand."""
    parser = argparse.ArgumentParser(
        prog="dupstack",
        description="Deploy and manage the dupstack backup server on OpenStack.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.__doc__,
            epilog=module.EXAMPLES + "\n" + EXIT_CODES,
            parents=[_common_options()],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _configure(sub, module)
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run, and turn failures into one line plus a hint."""
    args = parser.parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)
    try:
        return args.run(args)
    except DupstackError as exc:
        if args.debug:
            raise
        err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False)
        if exc.hint:
            err.print(f"[dim]hint:[/] {escape(exc.hint)}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if args.debug:
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}", highlight=False)
        err.print("[dim]hint:[/] run again with --debug and report the traceback")
        return 1


def main(argv: list[str] | None = None) -> int:
    return run(main_parser(), argv)


def _script(name: str) -> int:
    return run(command_parser(name), None)


def stack_start_main() -> int:
    return _script("stack-start")


def stack_get_url_main() -> int:
    return _script("stack-get-url")


def stack_status_main() -> int:
    return _script("stack-status")


def stack_connect_main() -> int:
    return _script("stack-connect")


def stack_delete_main() -> int:
    return _script("stack-delete")


def stack_offsite_main() -> int:
    return _script("stack-offsite")


if __name__ == "__main__":
    sys.exit(main())
