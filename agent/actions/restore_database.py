"""`dupctl restore HOST --database NAME`: load a database dump of a host's backup back.

The host's own duplicity fetches the dump (its spool file, agent/dumps.py) as of `--time`
into a root-only scratch folder there; then the database's own tools load it into a NEW
database (never an existing one: restore never overwrites), dropped again if the load fails.
SQLite files and the dumps of `all` are put beside, as files: a whole server's dump is not
loaded over the databases it holds.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePosixPath

from agent import dumps, remote
from agent.config.load import Database, HostConfig
from agent.duplicity.restore import restore_command
from agent.errors import DupstackError, RemoteCommandFailed, TargetNotEmpty, UsageError
from agent.execute import ANY_EXIT
from agent.host import open_host
from agent.paths import ServerPaths
from agent.times import check_time

SCRATCH = "/var/tmp/dupstack-restore.XXXXXXXX"  # noqa: S108 (mktemp -d: a new 0700 folder)
FREE = '! { [ -e "$1" ] || [ -L "$1" ]; }'  # exit 0: nothing at the path, not even a link


def restore_database(
    paths: ServerPaths,
    ssh: remote.Ssh,
    name: str,
    *,
    database: str,
    time: str | None,
    into: str | None,
    say: Callable[[str], None],
) -> str:
    """Restore `database` (its name, or TYPE:NAME) of host `name` as of `time` into `into`
    (a new database, or for SQLite and `all` a new file on the host); where it went."""
    time = check_time(time)
    sets = open_host(paths, name)
    entry = _find(sets.host, database)
    now = datetime.now(UTC)
    as_file = entry.type == "sqlite" or entry.name == "all"
    target = into or _default_target(entry, now)
    _check_target(entry, target, as_file)
    when = f"as of {time}" if time else "latest"
    with remote.session(ssh, sets.host) as host:
        _refuse_existing(host, entry, target, as_file, name)
        scratch = host.run(("mktemp", "-d", SCRATCH)).stdout.strip()
        try:
            dump = str(PurePosixPath(scratch) / PurePosixPath(dumps.dump_file(entry)).name)
            argv = restore_command(sets.on_host, dump, path=dumps.dump_file(entry), time=time)
            sets.private_caches(host)
            say(f"fetching the dump of {entry.label} ({when}) on {name}")
            done = sets.run_on_host(host, argv)
            sets.check(done)
            if as_file:
                host.run(("mv", "--no-target-directory", "--", dump, target))
            else:
                _load(host, entry, dump, target, name, say)
        finally:
            host.run(("rm", "-rf", "--", scratch), ok_codes=ANY_EXIT)
    what = f"file {shlex.quote(target)}" if as_file else f"database {target}"
    say(f"restored {entry.label} of {name} ({when}) into {what} on {name}")
    if entry.name == "all":
        client = "runuser -u postgres -- psql" if entry.type == "postgresql" else dumps.TOOLS[
            entry.type][2]  # fmt: skip
        say(f"it is the dump of every database: load what you need, e.g. {client} < {target}")
    return target


def _find(host: HostConfig, wanted: str) -> Database:
    """The host's database called `wanted` (or TYPE:NAME); UsageError naming the known ones."""
    found = [db for db in host.databases if wanted in (db.name, db.label)]
    known = ", ".join(db.label for db in host.databases) or "none"
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(
            f"{host.name} has several databases called {wanted!r}: {known}",
            hint=f"name it as TYPE:NAME, e.g. --database {found[0].label}",
        )
    raise UsageError(
        f"{host.name} dumps no database {wanted!r} (its databases: {known})",
        hint=f"the inventory's hosts.{host.name}.databases lists what its backups hold",
    )


def _default_target(entry: Database, now: datetime) -> str:
    if entry.type == "sqlite":
        return f"{entry.path}.restored-{now:%Y%m%dT%H%M%SZ}"
    if entry.name == "all":
        return f"/root/dupstack-{entry.type}-all-{now:%Y%m%dT%H%M%SZ}.sql"
    return f"{entry.name[:39]}_restored_{now:%Y%m%d%H%M%S}"  # 63 at most, as names are


def _check_target(entry: Database, target: str, as_file: bool) -> None:
    if as_file:
        parts = PurePosixPath(target).parts
        if not target.startswith("/") or ".." in parts or target.endswith("/"):
            raise UsageError(f"--into must be an absolute file path on the host: {target!r}")
    elif not dumps.NAME.match(target):
        raise UsageError(
            f"--into {target!r} is not a database name",
            hint="up to 63 letters, digits, _, $ or -, not starting with - or $",
        )


def _refuse_existing(
    host: remote.Session, entry: Database, target: str, as_file: bool, name: str
) -> None:
    if as_file:
        exists = host.run(("sh", "-c", FREE, "sh", target), ok_codes=(0, 1)).exit_code == 1
    else:
        argv, query = dumps.exists_query(entry, target)
        exists = _client(host, entry, argv, query, f"looking for {target}").strip() == "1"
    if exists:
        raise TargetNotEmpty(
            f"{'file' if as_file else 'database'} {target} exists on {name}: "
            "restore never overwrites",
            hint="restore into another with --into NEW"
            + ("" if as_file else f", or drop {target} first"),
        )


def _load(
    host: remote.Session,
    entry: Database,
    dump: str,
    target: str,
    name: str,
    say: Callable[[str], None],
) -> None:
    """Create `target` and load `dump` into it; dropped again if the load fails."""
    _client(host, entry, *dumps.create_command(entry, target), f"creating {target}")
    say(f"loading into the new database {target} on {name}")
    try:
        done = host.run(dumps.load_command(entry, dump, target), ok_codes=ANY_EXIT)
        said = done.said(2) or "no error output"
        failure = f"loading into {target} failed: {said}" if done.exit_code else ""
    except BaseException as cut:  # interrupted or cut off: the half-loaded database goes too
        failure = f"loading into {target} was cut off ({type(cut).__name__})"
        _drop(host, entry, target, name, failure)
        raise
    if failure:
        _drop(host, entry, target, name, failure)
        raise RemoteCommandFailed(
            f"{name}: {entry.label}: {failure}",
            hint=f"{target} was dropped again; fix the cause on {name}, then rerun",
        )


def _drop(host: remote.Session, entry: Database, target: str, name: str, failure: str) -> None:
    """Drop the new database a load did not finish; if that fails too, both are said."""
    try:
        _client(host, entry, *dumps.drop_command(entry, target), f"dropping {target}")
    except DupstackError as error:
        raise RemoteCommandFailed(
            f"{name}: {entry.label}: {failure}; and {target} is left half-loaded: {error.message}",
            hint=f"drop {target} on {name} by hand, then rerun",
        ) from None


def _client(
    host: remote.Session, entry: Database, argv: tuple[str, ...], sql: str, doing: str
) -> str:
    """Run a database client on the host; its stdout, or the database's own error raised."""
    done = host.run(argv, input=sql, ok_codes=ANY_EXIT)
    if done.exit_code:
        raise RemoteCommandFailed(
            f"{host.host.name}: {entry.label}: {doing} failed: "
            + (done.said(2) or "no error output"),
            hint=f"check the database server of {entry.label} and its credentials there",
        )
    return done.stdout
