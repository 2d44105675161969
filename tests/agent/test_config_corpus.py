"""Malformed inventories, by the hundred: each ends in one ConfigError whose lines name the
file (and key), never another exception, never a hang. A few are files that are not
inventories at all (a FIFO, /dev/zero, a directory, 2 MiB)."""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.config.load import load_inventory
from agent.errors import ConfigError
from agent.paths import ServerPaths

VALID: dict[str, Any] = {
    "server": {"address": "192.168.254.10", "port": 22},
    "defaults": {
        "user": "root", "port": 22, "paths": ["/etc"], "excludes": [],
        "full_if_older_than": "7D", "keep_full": 4, "remove_older_than": None, "volsize": 200,
        "schedule": {"backup": "H H(1-5) * * *", "prune": "H 0 * * 0", "catch_up": True},
        "hooks": {"before": [["true"]], "after_success": [], "after_failure": [], "always": []},
    },
    "hosts": {"web1": {"address": "10.0.0.5", "paths": ["/var/www"], "excludes": ["/var/www/c"]}},
}  # fmt: skip
BAD_VALUES: list[Any] = [
    None, True, -1, 0, 10**30, 1.5, "", "x" * 5000, [], {}, "\x00", "\x07", "--version",
    "../../etc", "/a/../b", "*", "nan", "inf", ["a", "a"], {"a": 1}, "\u202e", "\ud800x",
]  # fmt: skip


def leaves(node: Any, where: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of `node` (mappings and list items), leaves and branches alike."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*where, key)
            yield from leaves(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*where, index)
            yield from leaves(value, (*where, index))


def mutated(where: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(VALID)
    target: Any = document
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    return document


MUTATIONS = [(where, value) for where in leaves(VALID) for value in BAD_VALUES]
TEXTS: dict[str, str] = {
    "empty file": "",
    "only a comment": "# nothing\n",
    "a list": "- a\n- b\n",
    "a scalar": "hosts\n",
    "tabs": "server:\n\taddress: bs\nhosts: {}\n",
    "unclosed flow": "server: {address: bs\nhosts: {}\n",
    "duplicate keys": "server: {address: bs}\nhosts: {}\nhosts: {}\n",
    "numeric host name": "server: {address: bs}\nhosts:\n  123: {address: a}\n",
    "NUL character": "server: {address: bs}\x00\nhosts: {}\n",
    "BEL character": "server: {address: b\x07s}\nhosts: {}\n",
    "deep nesting": "server: " + "[" * 100 + "]" * 100 + "\nhosts: {}\n",
    "very deep nesting": "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "alias": "defaults: &d {port: 22}\nserver: {address: bs}\nhosts:\n  a: *d\n",
    "recursive alias": "server: &s {address: bs, loop: *s}\nhosts: {}\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
        for i in range(8)
    ) + "server: {address: bs}\nhosts: {}\n",
    "python tag": "server: !!python/object/apply:os.system [true]\nhosts: {}\n",
    "binary tag": "server: !!binary aGVsbG8=\nhosts: {}\n",
    "huge number": "server: {address: bs, port: 1" + "0" * 5000 + "}\nhosts: {}\n",
    "bad cron": "server: {address: bs}\nhosts:\n"
    "  a: {address: a, schedule: {backup: '99 * * * *'}}\n",
    "hook as string": "server: {address: bs}\nhosts:\n  a: {address: a, hooks: {before: rm}}\n",
    "exclude outside": "server: {address: bs}\nhosts:\n  a: {address: a, excludes: [/nope]}\n",
    "volsize huge": "server: {address: bs}\nhosts:\n  a: {address: a, volsize: 1000000000000}\n",
    "duration huge": "server: {address: bs}\nhosts:\n"
    "  a: {address: a, full_if_older_than: 99999999999D}\n",
}  # fmt: skip


@pytest.fixture
def paths(tmp_path: Path) -> ServerPaths:
    paths = ServerPaths.from_root(tmp_path)
    paths.config_file.parent.mkdir(parents=True)
    return paths


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A hang fails the test (SIGALRM) instead of stopping the suite."""

    def hung(*_: object) -> None:
        raise TimeoutError("loading the inventory hung")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def refused(paths: ServerPaths) -> list[str]:
    """The lines of the ConfigError; every one names the file."""
    with pytest.raises(ConfigError) as raised:
        load_inventory(paths)
    lines = raised.value.message.splitlines()
    assert lines and all(line.startswith(str(paths.config_file)) for line in lines), lines
    assert raised.value.hint
    return lines


def test_the_corpus_is_large_and_its_base_is_valid(paths: ServerPaths) -> None:
    assert len(MUTATIONS) + len(TEXTS) > 300
    paths.config_file.write_text(yaml.safe_dump(VALID))
    assert list(load_inventory(paths).hosts) == ["web1"]


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_malformed_texts_are_refused_in_one_error(paths: ServerPaths, name: str) -> None:
    paths.config_file.write_text(TEXTS[name])
    refused(paths)


@pytest.mark.parametrize(("where", "value"), MUTATIONS, ids=lambda item: repr(item)[:40])
def test_any_value_anywhere_loads_or_is_refused_by_key(
    paths: ServerPaths, where: tuple[Any, ...], value: Any
) -> None:
    try:
        text = yaml.safe_dump(mutated(where, value), allow_unicode=True)
    except yaml.YAMLError:
        pytest.skip("not representable in YAML")  # e.g. a lone surrogate
    paths.config_file.write_text(text, errors="surrogateescape")
    try:
        load_inventory(paths)
    except ConfigError:
        refused(paths)  # and its lines name the file


SPECIAL: dict[str, Callable[[Path], None]] = {
    "fifo": lambda file: os.mkfifo(file),
    "dev zero": lambda file: file.symlink_to("/dev/zero"),
    "directory": lambda file: file.mkdir(),
    "dangling link": lambda file: file.symlink_to(file.with_name("nowhere")),
    "link loop": lambda file: file.symlink_to(file),
    "2 MiB": lambda file: file.write_text("# " + "x" * (2 << 20) + "\n"),
    "not UTF-8": lambda file: file.write_bytes(b"server: {address: \xff\xfe}\nhosts: {}\n"),
    "unreadable": lambda file: (file.write_text("hosts: {}\n"), file.chmod(0), os.setuid) and None,
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_files_that_are_not_inventories_are_refused_without_reading_them(
    paths: ServerPaths, name: str
) -> None:
    SPECIAL[name](paths.config_file)
    refused(paths)
