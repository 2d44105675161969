"""What several dupctl commands share: the root check, progress lines, their common options
and the formatter of their --help."""

from __future__ import annotations

import argparse
import math
import os
import stat
from collections.abc import Callable
from pathlib import Path

from agent.errors import UsageError

DEFAULT_CONNECT_TIMEOUT = 10.0


def require_root(command: str) -> None:
    """Fail early with the sudo line, rather than midway on a permission error."""
    if os.geteuid() != 0:
        raise UsageError(f"dupctl {command} must run as root", hint=f"sudo dupctl {command}")


def say(line: str) -> None:
    """One progress line on stdout, flushed so that logs and pipes see it as it happens."""
    print(line, flush=True)


def debug_option(default: object) -> argparse.ArgumentParser:
    """--debug, accepted before and after the command (the command's must not reset it)."""
    option = argparse.ArgumentParser(add_help=False)
    option.add_argument(
        "--debug", action="store_true", default=default, help="log every step; tracebacks"
    )
    return option


def seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds in [low, high] (no -1, nan or inf)."""
    return number(low, high, "a number of seconds")


def percent(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite percentage in [low, high]."""
    return number(low, high, "a percentage")


def number(low: float, high: float, what: str) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high], `what` it is named in errors."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g}")
        return value

    return parse


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not between {low} and {high}")
        return value

    return parse


MAX_KEY_FILE = 64 * 1024


def read_small_file(path: Path, option: str) -> str:
    """A small regular text file (a public key), read without blocking on a FIFO or a
    device and without reading /dev/zero for ever."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_KEY_FILE:
            what = "not a regular file" if not stat.S_ISREG(info.st_mode) else "too large"
            raise UsageError(f"{option} {path}: {what}", hint=f"give {option} the key's .pub file")
        return path.read_text()
    except OSError as error:
        raise UsageError(f"cannot read {option} {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{option} {path} is not text: not a public key") from None


def add_connect_timeout(parser: argparse.ArgumentParser) -> None:
    """--timeout for the commands that connect to tenant hosts over SSH."""
    parser.add_argument(
        "--timeout",
        type=seconds(0.1, 3600),
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"SSH connect timeout (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )


def add_time_option(parser: argparse.ArgumentParser) -> None:
    """--time for the commands that read a host's backup as of a moment."""
    parser.add_argument(
        "--time", metavar="T", help="as of T: 2026-11-22T03:00:00Z, 3D (ago), epoch seconds"
    )


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that a text written on several lines (the examples)
    keeps its lines; one-line texts are still filled to the terminal's width."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text.strip("\n"):
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))
