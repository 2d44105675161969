"""The inventory /etc/duplicity/dupstack.yaml: schema, errors that name file and key, rewrites."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import jsonschema
import pytest

from agent.config.load import (
    SCHEMA_FILE,
    HostConfig,
    HostSchedule,
    load_inventory,
    remove_host,
    save_host,
)
from agent.duplicity.common import selection_flags
from agent.errors import ConfigError, UnknownHost, UsageError
from agent.host import HostContext
from agent.paths import ServerPaths

NO_HOOKS = {"before": (), "after_success": (), "after_failure": (), "always": ()}
DESIGN_EXAMPLE = """\
server:
  address: 192.168.254.10     # how tenant hosts reach BS (SFTP)
  port: 22
defaults:                     # every key of a host may be set here
  user: root
  port: 22
  paths: [/etc]
  excludes: []
  full_if_older_than: 7D
  keep_full: 4                # remove-all-but-n-full
  remove_older_than: null     # e.g. 6M
  volsize: 200                # MB per duplicity volume
hosts:
  web1:
    address: 10.0.0.5
    paths: [/etc, /var/www]
    excludes: [/var/www/cache]
"""


@pytest.fixture
def paths(tmp_path: Path) -> ServerPaths:
    return ServerPaths.from_root(tmp_path)


def problems(paths: ServerPaths, text: str) -> list[str]:
    """The lines of the ConfigError that loading `text` raises, without the file name."""
    paths.config_file.parent.mkdir(parents=True, exist_ok=True)
    paths.config_file.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_inventory(paths)
    lines = raised.value.message.splitlines()
    assert all(line.startswith(f"{paths.config_file}") for line in lines)
    return [line.removeprefix(str(paths.config_file)) for line in lines]


def test_the_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


def test_the_designs_example_loads_with_defaults_merged_and_the_host_winning(
    paths: ServerPaths,
) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(
        DESIGN_EXAMPLE
        + "  db1:\n    address: db1.internal\n    user: debian\n    keep_full: null\n"
    )
    inventory = load_inventory(paths)
    assert (inventory.server_address, inventory.server_port) == ("192.168.254.10", 22)
    assert inventory.hosts["web1"] == HostConfig(
        name="web1",
        address="10.0.0.5",
        user="root",
        port=22,
        paths=("/etc", "/var/www"),  # the host's list replaces the default one
        excludes=("/var/www/cache",),
        full_if_older_than="7D",
        keep_full=4,
        remove_older_than=None,
        volsize=200,
        schedule=HostSchedule(
            backup="H H(1-5) * * *", prune="H 0 * * 0", catch_up=True, drill="H H(6-7) * * 6"
        ),
        hooks=NO_HOOKS,
    )
    db1 = inventory.host("db1")
    assert (db1.user, db1.paths, db1.keep_full, db1.sftp_user) == (
        "debian",
        ("/etc",),
        None,
        "dup-db1",
    )
    with pytest.raises(AttributeError):
        db1.user = "root"  # type: ignore[misc]


def test_built_in_defaults_fill_what_the_file_leaves_out(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text("server: {address: bs}\nhosts:\n  a: {address: 10.0.0.9}\n")
    inventory = load_inventory(paths)
    assert inventory.server_port == 22
    assert inventory.host("a") == HostConfig(
        "a",
        "10.0.0.9",
        "root",
        22,
        ("/etc",),
        (),
        "7D",
        4,
        None,
        200,
        HostSchedule("H H(1-5) * * *", "H 0 * * 0", True, "H H(6-7) * * 6"),
        NO_HOOKS,
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("[/etc, /var/www]", "[/etc, var/www]"),
            ":16: hosts.web1.paths[1]: expected an absolute path like /var/www (no . or .. "
            "parts, no trailing /, no * ? [ ]), got 'var/www'",
        ),
        (
            ("    paths:", "    pathz:"),
            ":16: hosts.web1.pathz: unknown key 'pathz' (did you mean 'paths'?)",
        ),
        (
            ("full_if_older_than: 7D", "full_if_older_than: 7 days"),
            ":9: defaults.full_if_older_than: expected a duration like 7D, 12h, 6M "
            "(units s m h D W M Y), got '7 days'",
        ),
        (
            ("remove_older_than: null", "remove_older_than: 6 months"),
            ":11: defaults.remove_older_than: expected a duration like 7D, 12h, 6M "
            "(units s m h D W M Y), or null, got '6 months'",
        ),
        (
            ("  web1:", "  Web_1:"),
            ":14: hosts.Web_1: bad host name: expected 1 to 28 lowercase letters, digits or "
            "'-', not starting with '-' (the name becomes the user name dup-NAME)",
        ),
        (
            ("  web1:", "  web1-with-a-name-that-is-too-long:"),
            ":14: hosts.web1-with-a-name-that-is-too-long: bad host name: expected 1 to 28 "
            "lowercase letters, digits or '-', not starting with '-' (the name becomes the "
            "user name dup-NAME)",
        ),
        (
            ("address: 10.0.0.5", "adress: 10.0.0.5"),
            [
                ":14: hosts.web1.address: missing (required)",
                ":15: hosts.web1.adress: unknown key 'adress' (did you mean 'address'?)",
            ],
        ),
        (
            ("  port: 22\ndefaults", "  port: 70000\ndefaults"),
            ":3: server.port: expected a TCP port (1-65535), got 70000",
        ),
        (
            ("  user: root", "  user: [root]"),
            ":5: defaults.user: expected a user name like root or debian, got a list",
        ),
        (
            ("  volsize: 200", "  volsize: 0"),
            ":12: defaults.volsize: expected a volume size in MiB (1 to 10240), like 200, got 0",
        ),
        (
            ("  volsize: 200", "  volsize: 200\n  concurrency: 9"),
            ":13: defaults.concurrency: expected a number of uploads at once (1 to 8), like 1, "
            "got 9",
        ),
        (
            ("  volsize: 200", "  volsize: 200\n  compression: zlib-0"),
            ":13: defaults.compression: expected none, zip, zlib or bzip2 with an optional level "
            "(zlib-1), or null, got 'zlib-0'",
        ),
        (
            ("excludes: [/var/www/cache]", "excludes: [/srv/cache]"),
            ":17: hosts.web1.excludes[0]: '/srv/cache' is not inside any path of host web1 "
            "(/etc, /var/www): it would exclude nothing or, before an include, hide a whole path",
        ),
        (
            ("defaults:", "defaults:\n  address: 10.0.0.1"),
            ":5: defaults.address: unknown key 'address'",
        ),
        (
            ("hosts:", "host:"),
            [
                ": hosts: missing (required)",
                ":13: host: unknown key 'host' (did you mean 'hosts'?)",
            ],
        ),
        (
            ("  web1:", "  1234:"),
            ":14: hosts.1234: key 1234 must be text: quote it ('1234')",
        ),
        (
            ("hosts:\n", "hosts:\n  web1: {address: 10.0.0.1}\n"),
            ":15: hosts.web1: duplicate key (first on line 14)",
        ),
    ],
)
def test_each_problem_names_the_file_line_key_and_what_is_expected(
    paths: ServerPaths, change: tuple[str, str], expected: str | list[str]
) -> None:
    assert DESIGN_EXAMPLE.count(change[0]) == 1
    lines = [expected] if isinstance(expected, str) else expected
    assert problems(paths, DESIGN_EXAMPLE.replace(*change)) == lines


def test_an_exclude_from_defaults_is_checked_against_each_hosts_paths(paths: ServerPaths) -> None:
    text = DESIGN_EXAMPLE.replace("  excludes: []", "  excludes: ['**/*.tmp', /var/www/cache]")
    text += "  db1:\n    address: 10.0.0.6\n"  # uses the defaults: paths [/etc]
    assert problems(paths, text) == [
        ":8: defaults.excludes[1]: '/var/www/cache' is not inside any path of host db1 (/etc): "
        "it would exclude nothing or, before an include, hide a whole path"
    ]


def test_every_problem_is_reported_at_once_in_the_files_order(paths: ServerPaths) -> None:
    text = "server: {address: bs, port: none}\nhosts:\n  a: {address: x, paths: [etc]}\n  b: {}\n"
    assert problems(paths, text) == [
        ":1: server.port: expected a TCP port (1-65535), got 'none'",
        ":3: hosts.a.paths[0]: expected an absolute path like /var/www (no . or .. parts, "
        "no trailing /, no * ? [ ]), got 'etc'",
        ":4: hosts.b.address: missing (required)",
    ]


def test_an_empty_file_and_yaml_errors(paths: ServerPaths) -> None:
    assert problems(paths, "") == [
        ": (top level): expected a mapping with the keys server, defaults and hosts, "
        "got nothing (null)"
    ]
    assert problems(paths, "server:\n  address: [bs\nhosts: {}\n") == [
        ":3:6: invalid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence on line 2)"
    ]


def test_a_missing_file_says_how_to_add_a_host(paths: ServerPaths) -> None:
    with pytest.raises(ConfigError) as raised:
        load_inventory(paths)
    assert raised.value.message == f"{paths.config_file} does not exist: no hosts to back up"
    assert "dupctl host add" in raised.value.hint
    assert isinstance(raised.value, UsageError) and raised.value.exit_code == 2


def test_an_unknown_host_lists_the_known_ones(paths: ServerPaths) -> None:
    save_host(paths, {"name": "web1", "address": "10.0.0.5"}, server={"address": "bs"})
    with pytest.raises(UnknownHost, match=r"no host 'web2' in .*dupstack.yaml \(hosts: web1\)"):
        load_inventory(paths).host("web2")


def test_save_host_creates_the_file_root_only_and_needs_the_server_first(
    paths: ServerPaths,
) -> None:
    with pytest.raises(ConfigError, match="no server address"):
        save_host(paths, {"name": "web1", "address": "10.0.0.5"})
    assert not paths.config_file.exists()
    saved = save_host(
        paths, {"name": "web1", "address": "10.0.0.5"}, server={"address": "192.168.254.10"}
    )
    assert saved == load_inventory(paths).host("web1")
    info = paths.config_file.stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o600, 0, 0)
    assert paths.config_file.read_text().startswith("# dupstack inventory")


def test_save_and_remove_keep_the_other_hosts_and_the_defaults(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(DESIGN_EXAMPLE)
    before = load_inventory(paths)
    db1 = save_host(
        paths,
        {"name": "db1", "address": "10.0.0.6", "paths": ["/var/lib/pg"], "excludes": ["**/*.tmp"]},
    )
    assert (db1.paths, db1.excludes, db1.keep_full) == (("/var/lib/pg",), ("**/*.tmp",), 4)
    assert load_inventory(paths).host("db1") == db1
    save_host(paths, {"name": "web1", "address": "10.0.0.50", "paths": ["/etc", "/var/www"]})
    after = load_inventory(paths)
    assert after.host("web1").address == "10.0.0.50"
    assert after.host("web1").excludes == ()  # replaced as given, not merged with the old entry
    remove_host(paths, "db1")
    assert list(load_inventory(paths).hosts) == ["web1"]
    assert load_inventory(paths).server_address == before.server_address
    assert "keep_full: 4" in paths.config_file.read_text()  # the defaults section is kept
    with pytest.raises(UnknownHost):
        remove_host(paths, "db1")


def test_a_write_is_validated_and_leaves_the_file_alone_if_wrong(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(DESIGN_EXAMPLE)
    with pytest.raises(ConfigError) as raised:
        save_host(paths, {"name": "db1", "address": "10.0.0.6", "paths": ["var/lib"]})
    assert raised.value.message.startswith(f"{paths.config_file}: hosts.db1.paths[0]: expected")
    with pytest.raises(ConfigError, match="bad host name"):
        save_host(paths, {"name": "DB 1", "address": "10.0.0.6"})
    assert paths.config_file.read_text() == DESIGN_EXAMPLE
    # An already broken file is never rewritten: its errors (with lines) come first.
    paths.config_file.write_text(DESIGN_EXAMPLE.replace("keep_full: 4", "keep_full: 0"))
    with pytest.raises(ConfigError, match=r":10: defaults.keep_full: expected a number"):
        save_host(paths, {"name": "db1", "address": "10.0.0.6"})


def test_concurrent_saves_lose_no_host(paths: ServerPaths) -> None:
    save_host(paths, {"name": "first", "address": "10.0.0.1"}, server={"address": "bs"})
    names = [f"host{number}" for number in range(8)]
    threads = [
        threading.Thread(target=save_host, args=(paths, {"name": name, "address": "10.0.0.2"}))
        for name in names
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(load_inventory(paths).hosts) == sorted(["first", *names])


@pytest.mark.parametrize(
    ("hooks", "expected"),
    [
        (
            "{before: [pg_dumpall]}",
            "hosts.a.hooks.before[0]: expected a command as a list of words",
        ),
        ("{before: [[]]}", "hosts.a.hooks.before[0]: expected a command as a list of words"),
        ("{after: [[true]]}", "hosts.a.hooks.after: unknown key 'after'"),
        ("{always: [[true, 3]]}", "hosts.a.hooks.always[0][1]: expected"),
        ("[[true]]", "hosts.a.hooks: expected a mapping with the keys before, after_success"),
    ],
)
def test_hooks_are_commands_as_word_lists(paths: ServerPaths, hooks: str, expected: str) -> None:
    text = f"server: {{address: bs}}\nhosts:\n  a:\n    address: 10.0.0.9\n    hooks: {hooks}\n"
    lines = problems(paths, text)
    assert any(expected in line for line in lines), lines


def test_hooks_merge_phase_by_phase_over_the_defaults(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(
        "server: {address: bs}\n"
        "defaults: {hooks: {before: [[dump, all]], always: [[notify]]}}\n"
        "hosts:\n  a: {address: 10.0.0.9, hooks: {before: [[dump, a]]}}\n"
    )
    hooks = load_inventory(paths).host("a").hooks
    assert hooks["before"] == (("dump", "a"),) and hooks["always"] == (("notify",),)
    assert hooks["after_success"] == ()


def test_edits_keep_the_operators_comments_and_order(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    commented = (
        "# our backup inventory: ask ops before editing\n"
        "server:\n  address: 192.168.254.10   # the backup server's private address\n"
        "hosts:\n"
        "  zeta:\n    address: 10.0.0.9   # legacy box\n    paths: [/srv]\n"
        "  alpha:\n    address: 10.0.0.5\n    # nightly dumps land here\n"
        "    paths: [/etc, /var/backups]\n"
        "  gone:\n    address: 10.0.0.7\n"
    )
    paths.config_file.write_text(commented)
    save_host(paths, {"name": "mid", "address": "10.0.0.8"})
    save_host(paths, {"name": "alpha", "address": "10.0.0.50", "paths": ["/etc", "/var/backups"]})
    remove_host(paths, "gone")
    text = paths.config_file.read_text()
    for comment in ("# our backup inventory: ask ops before editing",
                    "# the backup server's private address", "# legacy box",
                    "# nightly dumps land here"):  # fmt: skip
        assert comment in text, text
    assert [line.strip() for line in text.splitlines() if line.startswith("  ") and
            line.strip().endswith(":") and not line.startswith("   ")] == [
        "zeta:", "alpha:", "mid:",
    ]  # fmt: skip
    assert "gone" not in text and "10.0.0.50" in text and "paths: [/srv]" in text
    assert list(load_inventory(paths).hosts) == ["zeta", "alpha", "mid"]


@pytest.mark.parametrize(
    ("databases", "expected"),
    [
        ("[{type: postgres, name: shop}]", "databases[0].type: expected postgresql, mariadb"),
        ("[{type: mariadb}]", "databases[0].name: missing (required)"),
        ("[{type: mariadb, name: 'a;b'}]", "databases[0].name: expected a database name"),
        ("[{type: sqlite, name: app}]", "databases[0].path: missing (required for sqlite"),
        ("[{type: sqlite, name: all, path: /a.db}]", "databases[0].name: sqlite takes a label"),
        ("[{type: sqlite, name: a, path: /a.db, user: x}]", "databases[0].user: sqlite takes no"),
        ("[{type: mysql, name: a, path: /a}]", "databases[0].path: only sqlite takes a path"),
        ("[{type: mysql, name: a, role: r}]", "databases[0].role: only postgresql takes a role"),
        ("[{type: mysql, name: a}, {type: mysql, name: a}]", "databases[1].name: mysql:a is"),
        ("[{type: mysql, name: a, credentials: my.cnf}]", "databases[0].credentials: expected"),
    ],
)
def test_databases_name_the_entry_and_key(
    paths: ServerPaths, databases: str, expected: str
) -> None:
    text = "server: {address: bs}\nhosts:\n  a:\n    address: 10.0.0.9\n"
    text += f"    databases: {databases}\n"
    lines = problems(paths, text)
    assert any(f"hosts.a.{expected}" in line for line in lines), lines


def test_no_exclude_can_hide_the_dump_spool(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(
        "server: {address: bs}\nhosts:\n  a:\n    address: 10.0.0.9\n    paths: [/var]\n"
        "    excludes: [/var/backups, '**/*.sql']\n    databases: [{type: postgresql, name: all}]\n"
    )
    inventory = load_inventory(paths)
    [database] = inventory.host("a").databases
    assert (database.type, database.name, database.label) == ("postgresql", "all", "postgresql:all")
    flags = selection_flags(HostContext(paths, inventory, inventory.host("a"), "x").selection)
    # duplicity takes the first pattern that matches: the spool's include comes first
    assert flags == ("--include", "/var/backups/dupstack", "--exclude", "/var/backups",
                     "--exclude", "**/*.sql", "--include", "/var", "--exclude", "**")  # fmt: skip


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("notifications: {success: true}", "notifications.urls_file: missing (required)"),
        ("notifications: {urls_file: x}", "notifications.urls_file: expected an absolute path"),
        ("notifications: {urls_file: /u, stale_after: 2 days}", "notifications.stale_after"),
        ("metrics: {textfile: relative.prom}", "metrics.textfile: expected an absolute path"),
        ("metrics: {file: /a.prom}", "metrics.file: unknown key 'file'"),
    ],
)
def test_notifications_and_metrics_name_their_keys(
    paths: ServerPaths, section: str, expected: str
) -> None:
    text = f"server: {{address: bs}}\n{section}\nhosts:\n  a: {{address: 10.0.0.9}}\n"
    lines = problems(paths, text)
    assert any(expected in line for line in lines), lines


def test_notifications_and_metrics_defaults(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text("server: {address: bs}\nhosts:\n  a: {address: 10.0.0.9}\n")
    inventory = load_inventory(paths)
    assert inventory.notifications is None
    assert inventory.metrics_textfile == "/var/lib/prometheus/node-exporter/dupstack.prom"
    paths.config_file.write_text(
        "server: {address: bs}\nnotifications: {urls_file: /etc/n}\nmetrics: {textfile: null}\n"
        "hosts:\n  a: {address: 10.0.0.9}\n"
    )
    inventory = load_inventory(paths)
    assert (inventory.notifications.urls_file, inventory.notifications.stale_after) == (
        "/etc/n", "36h",
    )  # fmt: skip
    assert inventory.metrics_textfile is None


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("{type: mariadb, name: a, user: app, credentials: /root/a.cnf}", "databases[0].user: a"),
        ("{type: postgresql, name: a, credentials: /root/a.pgpass}", "databases[0].role: missing"),
    ],
)
def test_credentials_go_with_root_and_a_role(paths: ServerPaths, entry: str, expected: str) -> None:
    text = f"server: {{address: bs}}\nhosts:\n  a: {{address: 10.0.0.9, databases: [{entry}]}}\n"
    lines = problems(paths, text)
    assert any(f"hosts.a.{expected}" in line for line in lines), lines


def test_the_schema_passes_a_text_once_and_never_a_changed_one(paths: ServerPaths) -> None:
    """load_inventory remembers the digest of a text the schema passed (the next run skips
    jsonschema); an edit, however small, is checked again, and a damaged record is none."""
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.write_text(DESIGN_EXAMPLE)
    load_inventory(paths)
    passed = paths.state_dir / "inventory.schema-passed"
    assert not paths.state_dir.exists()  # loading makes no folders: none before a first run
    paths.state_dir.mkdir(parents=True)
    load_inventory(paths)
    assert passed.stat().st_mode & 0o777 == 0o600
    digest = passed.read_text()
    load_inventory(paths)  # the same text: the same record
    assert passed.read_text() == digest

    paths.config_file.write_text(DESIGN_EXAMPLE.replace("volsize: 200", "volsize: many"))
    with pytest.raises(ConfigError, match=r"defaults\.volsize"):
        load_inventory(paths)
    assert passed.read_text() == digest  # a refused text is never recorded

    passed.write_text("not a digest\n")
    with pytest.raises(ConfigError, match=r"defaults\.volsize"):
        load_inventory(paths)


def test_a_text_the_schema_passed_loads_without_jsonschema(paths: ServerPaths) -> None:
    paths.config_file.parent.mkdir(parents=True)
    paths.state_dir.mkdir(parents=True)
    paths.config_file.write_text(DESIGN_EXAMPLE)
    load = (
        "import sys; from agent.config.load import load_inventory; "
        "from pathlib import Path; from agent.paths import ServerPaths; "
        f"load_inventory(ServerPaths.from_root(Path({str(paths.root)!r}))); "
        "print('jsonschema' in sys.modules)"
    )
    runs = [subprocess.run([sys.executable, "-c", load], capture_output=True, text=True,
                           check=True).stdout.strip() for _ in range(2)]  # fmt: skip
    assert runs == ["True", "False"]
