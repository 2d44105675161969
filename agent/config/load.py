"""The inventory /etc/duplicity/dupstack.yaml: read, validate, merge defaults, edit in place.

Every problem becomes one line naming the file, the line (when known), the key path
(`hosts.web1.paths[1]`) and what was expected; the schema is agent/config/schema.json.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import re
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agent.duplicity.common import is_inside
from agent.errors import ConfigError, UnknownHost, UsageError
from agent.files import write_atomic
from agent.paths import ServerPaths
from agent.schedule.cron import BadCron, resolve

if TYPE_CHECKING:
    import jsonschema
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap

logger = logging.getLogger(__name__)

SCHEMA_FILE = Path(__file__).with_name("schema.json")
# In the state dir: the digest of the last inventory text the schema passed (load_inventory).
SCHEMA_PASSED = "inventory.schema-passed"

# What a host gets when neither it nor `defaults` sets a key (the design's example).
BUILTIN_DEFAULTS: Mapping[str, Any] = {
    "user": "root",
    "port": 22,
    "paths": ["/etc"],
    "excludes": [],
    "full_if_older_than": "7D",
    "keep_full": 4,
    "remove_older_than": None,
    "volsize": 200,
    # The backup path's knobs, measured by bench/knobs.py (bench/RESULTS.md, README): none
    # beat these by more than the runs' spread, or only at a cost (memory, room, speed).
    "concurrency": 1,
    "compression": None,
    "quota": None,
    "hooks": {"before": [], "after_success": [], "after_failure": [], "always": []},
    # Daily at the host's own time between 01:00 and 05:59; prune on Sundays before that.
    "schedule": {
        "backup": "H H(1-5) * * *",
        "prune": "H 0 * * 0",
        "drill": "H H(6-7) * * 6",  # weekly, on Saturday mornings after that night's backup
        "catch_up": True,
    },
    "databases": [],
    "ping_url_file": None,
}
METRICS_TEXTFILE = "/var/lib/prometheus/node-exporter/dupstack.prom"
STALE_AFTER = "36h"
# Dumps and the metadata record made on the host before its backup (root-only, in every
# backup, removed after the run).
DUMP_SPOOL = "/var/backups/dupstack"
METADATA_RECORD = f"{DUMP_SPOOL}/metadata"  # agent/metadata.py
ADD_HOST_HINT = "add a host with `dupctl host add` (see `dupctl host add --help`)"


@dataclass(frozen=True)
class HostSchedule:
    """When cron runs the host's jobs (cron expressions, H resolved per host; None: never)."""

    backup: str | None
    prune: str | None
    catch_up: bool
    drill: str | None = None


@dataclass(frozen=True)
class Database:
    """A database a host dumps before its backup (agent/hooks/databases.py)."""

    type: str  # postgresql, mariadb, mysql, sqlite
    name: str  # the database, or all; sqlite: a label
    path: str | None = None  # sqlite: the file
    user: str | None = None  # the host's OS user that dumps (None: the type's default)
    role: str | None = None  # postgresql: the role (None: the OS user's name)
    host: str | None = None
    port: int | None = None
    credentials: str | None = None  # a root-only file on the host (pgpass, my.cnf)

    @property
    def label(self) -> str:
        """`postgresql:shop`, as `dupctl restore --database` takes it (or just the name)."""
        return f"{self.type}:{self.name}"


@dataclass(frozen=True)
class OffsiteTarget:
    """Where copies of the hosts' sets go (agent/offsite): an S3 bucket or a Swift container,
    objects under PREFIX/HOST/ with duplicity's own names."""

    name: str
    type: str  # s3, swift
    credentials_file: str  # root-only, key = value lines (agent/offsite/credentials.py)
    prefix: str = "dupstack"
    bucket: str | None = None  # s3
    container: str | None = None  # swift
    region: str | None = None
    endpoint_url: str | None = None  # s3: a non-AWS service
    auth_url: str | None = None  # swift: Keystone v3
    storage_class: str = "STANDARD"  # s3: of the volumes; the rest stays STANDARD
    server_side_encryption: str | None = None
    storage_policy: str | None = None  # swift
    concurrency: int = 4
    bandwidth_limit: int | None = None  # bytes per second
    keep_full: int | None = None  # offsite retention (agent/offsite/retention.py)
    remove_older_than: str | None = None


OFFSITE_KEYS = {
    "s3": {"bucket", "endpoint_url", "storage_class", "server_side_encryption"},
    "swift": {"container", "auth_url", "storage_policy"},
}
OFFSITE_REQUIRED = {"s3": ("bucket",), "swift": ("container", "auth_url")}


@dataclass(frozen=True)
class Notifications:
    """Who is told (apprise URLs in a root-only file), about what."""

    urls_file: str
    success: bool = False
    stale_after: str | None = STALE_AFTER


@dataclass(frozen=True)
class HostConfig:
    """One tenant host with `defaults` merged in (the host's own keys win, lists included)."""

    name: str
    address: str
    user: str
    port: int
    paths: tuple[str, ...]
    excludes: tuple[str, ...]
    full_if_older_than: str
    keep_full: int | None
    remove_older_than: str | None
    volsize: int
    schedule: HostSchedule
    # phase (before, after_success, after_failure, always) -> commands run on the host
    hooks: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    quota: int | None = None  # bytes its sets may take on the volume; None: a share (quota.py)
    databases: tuple[Database, ...] = ()
    ping_url_file: str | None = None  # a root-only file with its healthchecks-style URL
    concurrency: int = 1  # volumes its duplicity uploads at once
    compression: str | None = None  # gpg's: none, zlib, zlib-1...; None: gpg's default

    @property
    def sftp_user(self) -> str:
        """The host's chrooted SFTP account on the backup server."""
        return f"dup-{self.name}"


@dataclass(frozen=True)
class Inventory:
    """The whole file: where hosts reach this server, and every host by name."""

    server_address: str
    server_port: int
    hosts: Mapping[str, HostConfig]
    file: Path  # where it was read, for errors
    reserve: int | None = None  # bytes kept free on the volume (None: agent/quota.py's default)
    notifications: Notifications | None = None
    metrics_textfile: str | None = METRICS_TEXTFILE  # None: no metrics
    offsite: Mapping[str, OffsiteTarget] = field(default_factory=dict)
    push_after_backup: bool = True
    prices: Mapping[str, Any] = field(default_factory=dict)  # offsite.prices: overrides

    @property
    def quotas(self) -> dict[str, int | None]:
        """Each host's quota (None: it gets a share, agent/quota.py)."""
        return {name: host.quota for name, host in self.hosts.items()}

    def chosen_hosts(self, names: Sequence[str]) -> list[HostConfig]:
        """The hosts `names` (each once, unknown ones refused), or every host by name."""
        chosen = [self.host(name) for name in dict.fromkeys(names)]
        return chosen or [self.hosts[name] for name in sorted(self.hosts)]

    def chosen_targets(self, names: Sequence[str]) -> list[OffsiteTarget]:
        """The offsite targets `names`, or every one by name; UsageError if there are none."""
        if not self.offsite:
            raise UsageError(
                f"{self.file} has no offsite targets",
                hint="add offsite.targets (docs/offsite.md), then rerun",
            )
        chosen = [self.target(name) for name in dict.fromkeys(names)]
        return chosen or [self.offsite[name] for name in sorted(self.offsite)]

    def target(self, name: str) -> OffsiteTarget:
        """The offsite target called `name`; UsageError naming the known ones."""
        if name not in self.offsite:
            known = ", ".join(sorted(self.offsite)) or "none"
            raise UsageError(
                f"no offsite target {name!r} in {self.file} (targets: {known})",
                hint="targets are the inventory's offsite.targets (docs/offsite.md)",
            )
        return self.offsite[name]

    def host(self, name: str) -> HostConfig:
        """The host called `name`; UnknownHost (with the known names) if there is none."""
        if name not in self.hosts:
            known = ", ".join(sorted(self.hosts)) or "none"
            raise UnknownHost(
                f"no host {name!r} in {self.file} (hosts: {known})", hint=ADD_HOST_HINT
            )
        return self.hosts[name]


UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size_bytes(text: str) -> int:
    """`50G` as bytes (the schema checked the form)."""
    unit = text[-1] if text[-1] in UNITS and len(text) > 1 else ""
    return int(text.removesuffix(unit)) * UNITS[unit]


def read_document(paths: ServerPaths) -> dict[str, Any]:
    """The inventory's data as written (validated), for edits that keep a host's own keys."""
    document, node, _ = _read(paths.config_file)
    _inventory(document, paths.config_file, node)
    return document


# The command-line option of each setting, for errors about values typed on the command line.
OPTION_OF = {"address": "--address", "user": "--user", "port": "--port", "paths": "--path",
             "excludes": "--exclude"}  # fmt: skip


def check_host_entry(
    paths: ServerPaths, name: str, settings: Mapping[str, Any], server: Mapping[str, Any]
) -> None:
    """UsageError naming the option if the inventory would refuse `settings` for `name`
    (with the file's defaults): checked before `host add` changes anything."""
    document = read_document(paths) if paths.config_file.exists() else {"hosts": {}}
    candidate = {
        **document,
        "server": dict(server),
        "hosts": {**document["hosts"], name: dict(settings)},
    }
    try:
        _inventory(json.loads(json.dumps(candidate)), paths.config_file)
    except ConfigError as error:
        lines = []
        for line in error.message.splitlines():
            where = line.removeprefix(f"{paths.config_file}: ")
            key, _, what = where.partition(": ")
            parts = key.split(".")
            if key.startswith(f"hosts.{name}.") and (
                option := OPTION_OF.get(parts[2].split("[")[0])
            ):
                lines.append(f"{option}: {what}")
            elif key.startswith("server.address"):
                lines.append(f"--server-address: {what}")
            else:
                lines.append(where)
        raise UsageError("\n".join(lines), hint="nothing was changed; fix the option") from None


def load_inventory(paths: ServerPaths) -> Inventory:
    """The validated inventory; ConfigError if the file is missing or has any problem.

    The schema's verdict on a text is remembered (SCHEMA_PASSED): every run of dupctl
    loads the same inventory, and jsonschema's import and pass are ~0.1 s of its start. The
    checks in code, which name hosts and paths, run every time."""
    file = paths.config_file
    document, node, text = _read(file)
    passed = paths.state_dir / SCHEMA_PASSED
    digest = _schema_digest(text)
    known = _read_digest(passed) == digest
    inventory = _inventory(document, file, node, schema_passed=known)
    if not known:
        _remember(passed, digest)
    return inventory


def _schema_digest(text: str) -> str:
    """What the schema's verdict depends on: the schema (the very bytes this process checks
    with), the release it came with (its path: an upgrade brings its own jsonschema), the
    text."""
    parts = (os.fsencode(SCHEMA_FILE), _schema_bytes(), text.encode())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _read_digest(file: Path) -> str | None:
    try:
        return file.read_text().strip() if file.is_file() else None  # never a FIFO's wait
    except (OSError, UnicodeDecodeError):
        return None


def _remember(file: Path, digest: str) -> None:
    """Into a state dir that exists (loading the inventory makes no folders; a server's is
    there from its first run on); best effort: where it cannot be written (not root), the
    schema checks the text every time."""
    if not file.parent.is_dir():
        return
    try:
        write_atomic(file, f"{digest}\n", mode=0o600)
    except OSError as error:
        logger.debug("%s: not written: %s", file, error)


def save_host(
    paths: ServerPaths,
    host_settings: Mapping[str, Any],
    *,
    server: Mapping[str, Any] | None = None,
) -> HostConfig:
    """Add or replace the host `host_settings["name"]`, keeping every other host and defaults.

    Keys absent from `host_settings` come from `defaults`. `server` (address, port) sets the
    server section; it is required when the file does not exist yet. The file is edited
    round-trip: comments, order and layout of everything else stay as the operator wrote
    them. The result is validated before the file is replaced (atomically, 0600 root).
    """
    from ruamel.yaml.comments import CommentedMap  # for edits only: ~12 ms of every start

    settings = dict(host_settings)
    name = settings.pop("name")
    file = paths.config_file
    with _locked(file):
        if file.exists():
            document, node, _ = _read(file)
            _inventory(document, file, node)  # never rewrite a file that is already wrong
            data = _round_trip().load(file.read_text())
        elif server is None:
            raise ConfigError(
                f"{file} does not exist and no server address was given",
                hint="give the address tenant hosts use to reach this server",
            )
        else:
            data = CommentedMap(server=CommentedMap(), hosts=CommentedMap())
            data.yaml_set_start_comment(HEADER)
        if server is not None:
            _replace_items(data, "server", server)
        if not isinstance(data.get("hosts"), CommentedMap):
            data["hosts"] = CommentedMap()
        _replace_items(data["hosts"], name, settings)
        inventory = _write(file, data)
    return inventory.hosts[name]


def remove_host(paths: ServerPaths, name: str) -> None:
    """Remove host `name` from the inventory (UnknownHost if it is not there)."""
    file = paths.config_file
    with _locked(file):
        document, node, _ = _read(file)
        _inventory(document, file, node).host(name)
        data = _round_trip().load(file.read_text())
        del data["hosts"][name]
        _write(file, data)


HEADER = (
    "dupstack inventory (schema: agent/config/schema.json). dupctl host add/remove edit this\n"
    "file in place: your comments and order are kept."
)


@functools.cache
def _round_trip() -> YAML:
    from ruamel.yaml import YAML

    editor = YAML(typ="rt")  # round-trip: comments and layout kept
    editor.width = 100
    return editor


def _replace_items(parent: CommentedMap, key: str, values: Mapping[str, Any]) -> None:
    """`parent[key]` holds exactly `values` afterwards; keys it keeps keep their comments."""
    from ruamel.yaml.comments import CommentedMap

    current = parent.get(key)
    if not isinstance(current, CommentedMap):
        parent[key] = CommentedMap(values)
        return
    for old in [old for old in current if old not in values]:
        del current[old]
    for item, value in values.items():
        if current.get(item) != value:
            current[item] = value


def _write(file: Path, data: CommentedMap) -> Inventory:
    """Validate what `data` would write (as data: the caller's values, not the file's lines),
    then replace `file` with it."""
    stream = io.StringIO()
    _round_trip().dump(data, stream)
    text = stream.getvalue()
    inventory = _inventory(yaml.safe_load(text), file)
    write_atomic(file, text, mode=0o600)
    return inventory


@functools.cache
def _schema_bytes() -> bytes:
    return SCHEMA_FILE.read_bytes()


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(_schema_bytes())


# A host's name, as the schema says (it becomes the account dup-NAME).
HOST_NAME = re.compile(_schema()["properties"]["hosts"]["propertyNames"]["pattern"])


@contextlib.contextmanager
def _locked(file: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles (two `host add` at once must not lose a host)."""
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(file.with_name(f".{file.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


FIX_HINT = "fix the inventory (schema: agent/config/schema.json), then rerun"
MAX_SIZE = 1 << 20  # bytes: an inventory of a few thousand hosts fits many times over
MAX_DEPTH = 12  # nesting: the schema's deepest value (hooks.before[0][0]) is at depth 5


def _read(file: Path) -> tuple[Any, yaml.Node | None, str]:
    """The data of `file`, its YAML node tree (for line numbers) and its text; not validated.

    Only a regular file of at most MAX_SIZE is read (a FIFO would block, /dev/zero never
    end); YAML's aliases are refused (an alias bomb expands without bounds), and so is
    nesting deeper than MAX_DEPTH."""
    try:
        info = file.stat()
    except FileNotFoundError:
        missing = f"{file} does not exist: no hosts to back up"
        raise ConfigError(missing, hint=ADD_HOST_HINT) from None
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}", hint=FIX_HINT) from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"{file} is not a regular file", hint=f"replace {file} with the inventory itself"
        )
    if info.st_size > MAX_SIZE:
        too_large = f"{file} is larger than {MAX_SIZE // 1024} KiB: not an inventory"
        raise ConfigError(too_large, hint=FIX_HINT)
    try:
        with open(file, "rb") as handle:
            text = handle.read(MAX_SIZE + 1).decode()
    except OSError as error:
        raise ConfigError(f"{file}: cannot read: {error.strerror}", hint=FIX_HINT) from None
    except UnicodeDecodeError as error:
        not_text = f"{file}: not UTF-8 text (byte {error.start})"
        raise ConfigError(not_text, hint=FIX_HINT) from None
    if len(text) > MAX_SIZE:
        too_large = f"{file} is larger than {MAX_SIZE // 1024} KiB: not an inventory"
        raise ConfigError(too_large, hint=FIX_HINT)
    loader = None
    try:
        loader = yaml.SafeLoader(text)  # checks the characters first
        node = loader.get_single_node()
        if node is not None:
            _check_shape(node, file)
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        context = error.context_mark and f" ({error.context} on line {error.context_mark.line + 1})"
        raise ConfigError(
            f"{where}: invalid YAML: {error.problem or error.context}{context or ''}",
            hint="fix the syntax at that line and column",
        ) from None
    except yaml.YAMLError as error:  # e.g. a control character (ReaderError)
        raise ConfigError(
            f"{file}: invalid YAML: {' '.join(str(error).split())}",
            hint="remove control characters; the inventory is plain UTF-8 text",
        ) from None
    except RecursionError:
        deep = f"{file}: nested deeper than {MAX_DEPTH} levels"
        raise ConfigError(deep, hint=FIX_HINT) from None
    except ValueError as error:  # an integer of thousands of digits
        raise ConfigError(f"{file}: a value YAML cannot read: {error}", hint=FIX_HINT) from None
    finally:
        if loader is not None:
            loader.dispose()
    if node is not None:
        _raise_if_any(list(_key_problems(node, ())), file, node)
    return document, node, text


def _check_shape(root: yaml.Node, file: Path) -> None:
    """ConfigError for an alias (a node met twice) or nesting deeper than MAX_DEPTH."""
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        line = node.start_mark.line + 1
        if id(node) in seen:
            raise ConfigError(
                f"{file}:{line}: YAML aliases (*name) are not allowed in the inventory",
                hint="write the values out where they are used",
            )
        seen.add(id(node))
        if depth > MAX_DEPTH:
            deep = f"{file}:{line}: nested deeper than {MAX_DEPTH} levels"
            raise ConfigError(deep, hint=FIX_HINT)
        if isinstance(node, yaml.MappingNode):
            stack.extend((part, depth + 1) for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)


def _inventory(
    document: Any, file: Path, node: yaml.Node | None = None, *, schema_passed: bool = False
) -> Inventory:
    """Validate `document` (schema, then what a schema cannot say) and merge the defaults."""
    if not schema_passed:
        _raise_if_any(_schema_problems(document), file, node)
    defaults = document.get("defaults") or {}
    hosts: dict[str, HostConfig] = {}
    problems: list[tuple[tuple[Any, ...], str]] = []
    for name, own in document["hosts"].items():
        merged = {**BUILTIN_DEFAULTS, **defaults, **own}
        schedule = {  # key by key: a host that sets only `backup` keeps the default prune
            **BUILTIN_DEFAULTS["schedule"],
            **defaults.get("schedule", {}),
            **own.get("schedule", {}),
        }
        problems.extend(_schedule_problems(name, schedule, own, defaults))
        hooks = {**BUILTIN_DEFAULTS["hooks"], **defaults.get("hooks", {}), **own.get("hooks", {})}
        origin = ("hosts", name) if "excludes" in own else ("defaults",)
        for index, pattern in enumerate(merged["excludes"]):
            if not is_inside(pattern, merged["paths"]):
                shown = ", ".join(merged["paths"])
                problems.append(
                    (
                        (*origin, "excludes", index),
                        f"{pattern!r} is not inside any path of host {name} ({shown}): "
                        "it would exclude nothing or, before an include, hide a whole path",
                    )
                )
        hosts[name] = HostConfig(
            name=name,
            address=merged["address"],
            user=merged["user"],
            port=merged["port"],
            paths=tuple(merged["paths"]),
            excludes=tuple(merged["excludes"]),
            full_if_older_than=merged["full_if_older_than"],
            keep_full=merged["keep_full"],
            remove_older_than=merged["remove_older_than"],
            volsize=merged["volsize"],
            schedule=HostSchedule(**schedule),
            hooks={phase: tuple(map(tuple, commands)) for phase, commands in hooks.items()},
            quota=size_bytes(merged["quota"]) if merged["quota"] else None,
            databases=tuple(Database(**entry) for entry in merged["databases"]),
            ping_url_file=merged["ping_url_file"],
            concurrency=merged["concurrency"],
            compression=merged["compression"],
        )
        origin = ("hosts", name) if "databases" in own else ("defaults",)
        problems.extend(_database_problems(merged["databases"], (*origin, "databases")))
    _raise_if_any(problems, file, node)
    offsite = document.get("offsite") or {}
    targets = offsite.get("targets", {})
    _raise_if_any(list(_target_problems(targets)), file, node)
    prices = offsite.get("prices") or {}
    if prices:  # the price tables are the planner's: imported only for overrides to check
        from agent.offsite.prices import priced

        try:
            priced(prices)
        except UsageError as error:  # names the key below offsite.prices
            _raise_if_any([(("offsite", "prices"), error.message.removeprefix("offsite.prices: "))],
                          file, node)  # fmt: skip
    server = document["server"]
    notify = document.get("notifications")
    return Inventory(
        file=file,
        server_address=server["address"],
        server_port=server.get("port", 22),
        hosts=hosts,
        reserve=size_bytes(server["reserve"]) if "reserve" in server else None,
        notifications=Notifications(**notify) if notify else None,
        metrics_textfile=(document.get("metrics") or {}).get("textfile", METRICS_TEXTFILE),
        offsite={name: _target(name, entry) for name, entry in targets.items()},
        push_after_backup=offsite.get("push_after_backup", True),
        prices=prices,
    )


def _target(name: str, entry: Mapping[str, Any]) -> OffsiteTarget:
    limit = entry.get("bandwidth_limit")
    return OffsiteTarget(
        name=name, **{**entry, "bandwidth_limit": size_bytes(limit) if limit else None}
    )


def _target_problems(targets: Mapping[str, Any]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """What the schema cannot say of offsite targets: which keys each type takes."""
    for name, entry in targets.items():
        kind = entry["type"]
        where = ("offsite", "targets", name)
        for key in OFFSITE_REQUIRED[kind]:
            if key not in entry:
                yield (*where, key), f"missing (required for {kind})"
        for other, keys in OFFSITE_KEYS.items():
            for key in sorted(keys & set(entry)) if other != kind else ():
                yield (*where, key), f"{kind} takes no {key} (that is for {other})"


def _database_problems(
    entries: Sequence[Mapping[str, Any]], where: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """What the schema cannot say of `databases`: which keys each type takes, no twins."""
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        kind = entry["type"]
        if kind == "sqlite":
            if "path" not in entry:
                yield (*where, index, "path"), "missing (required for sqlite: the database file)"
            if entry["name"] == "all":
                yield (*where, index, "name"), "sqlite takes a label for its file, not all"
            for key in ("user", "role", "host", "port", "credentials"):
                if key in entry:
                    yield (*where, index, key), f"sqlite takes no {key} (only name and path)"
        elif "path" in entry:
            yield (*where, index, "path"), f"only sqlite takes a path, not {kind}"
        if "credentials" in entry and "user" in entry:
            yield (
                (*where, index, "user"),
                ("a dump with credentials runs as root (the file is root's): leave out user"),
            )
        if kind == "postgresql" and "credentials" in entry and "role" not in entry:
            yield (
                (*where, index, "role"),
                "missing (required with credentials: the role the password file is for)",
            )
        if "role" in entry and kind != "postgresql":
            yield (*where, index, "role"), f"only postgresql takes a role ({kind}: credentials)"
        label = f"{kind}:{entry['name']}"
        if label in seen:
            yield (*where, index, "name"), f"{label} is listed twice (also at [{seen[label]}])"
        seen.setdefault(label, index)


def _schedule_problems(
    name: str, schedule: Mapping[str, Any], own: Mapping[str, Any], defaults: Mapping[str, Any]
) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Cron expressions that the server's cron could not run, at the key that set them."""
    for key in ("backup", "prune", "drill"):
        if schedule[key] is None:
            continue
        try:
            resolve(schedule[key], name)
        except BadCron as error:
            origin = ("hosts", name) if key in own.get("schedule", {}) else ("defaults",)
            if origin == ("defaults",) and key not in defaults.get("schedule", {}):
                continue  # the built-in defaults are valid
            yield (*origin, "schedule", key), f"bad cron expression {schedule[key]!r}: {error}"


def _schema_problems(document: object) -> list[tuple[tuple[Any, ...], str]]:
    import jsonschema  # only for a text the schema has not passed: see load_inventory

    validator = jsonschema.Draft202012Validator(_schema())
    problems = []
    for error in validator.iter_errors(document):
        problems.extend(_explain(error))
    return problems


def _explain(error: jsonschema.ValidationError) -> Iterator[tuple[tuple[Any, ...], str]]:
    """(key path, what is wrong) for one schema error, in the inventory's own words."""
    where = tuple(error.absolute_path)
    expected = error.schema.get("x-expected") if isinstance(error.schema, dict) else None
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        known = _known_keys(error.schema)
        for key in error.instance:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                guess = f" (did you mean {close[0]!r}?)" if close else ""
                yield (*where, key), f"unknown key {key!r}{guess}"
    elif error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        for key in missing:
            yield (*where, key), "missing (required)"
    elif "propertyNames" in error.schema_path:
        yield (*where, error.instance), f"bad host name: expected {expected}"
    elif error.validator == "uniqueItems":
        yield where, "lists the same entry twice"
    else:
        yield where, f"expected {expected or error.message}, got {_shown(error.instance)}"


def _known_keys(schema: Mapping[str, Any]) -> set[str]:
    """Property names `schema` allows, following its local `$ref`s."""
    keys = set(schema.get("properties", {}))
    if ref := schema.get("$ref"):
        target: Any = _schema()
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        keys |= _known_keys(target)
    return keys


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return repr(value)


def _key_problems(node: yaml.Node, where: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
    """What PyYAML accepts silently: duplicate keys (the last would win) and non-text keys."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if key.tag != "tag:yaml.org,2002:str":
                yield (*where, key.value), f"key {key.value} must be text: quote it ('{key.value}')"
            elif key.value in seen:
                first = seen[key.value]
                yield (*where, key.value), f"duplicate key (first on line {first})"
            seen.setdefault(key.value, key.start_mark.line + 1)
            yield from _key_problems(value, (*where, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _key_problems(item, (*where, index))


def _raise_if_any(
    problems: Sequence[tuple[tuple[Any, ...], str]], file: Path, node: yaml.Node | None
) -> None:
    """One ConfigError listing every problem, one line each: FILE[:LINE]: KEY: what."""
    if not problems:
        return
    entries = []
    for where, what in problems:
        line = _line_of(node, where)
        location = f"{file}:{line}" if line else str(file)
        entries.append((line or 0, f"{location}: {_key_path(where) or '(top level)'}: {what}"))
    raise ConfigError(
        "\n".join(text for _line, text in sorted(set(entries))),  # in the file's order, once
        hint=f"fix {file} (schema: agent/config/schema.json), then rerun",
    )


def _key_path(where: Sequence[Any]) -> str:
    """`hosts.web1.paths[1]` from ('hosts', 'web1', 'paths', 1)."""
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _line_of(node: yaml.Node | None, where: Sequence[Any]) -> int | None:
    """The 1-based line of the deepest key (or list item) along `where` that the file has."""
    line = None
    for part in where:
        if isinstance(node, yaml.MappingNode):
            match = [(key, value) for key, value in node.value if key.value == str(part)]
            if not match:
                break
            key, node = match[-1]
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
