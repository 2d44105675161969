"""Database dumps on a tenant host: argv for the host (pure; agent/hooks/databases.py and
agent/actions/restore_database.py run them).

A dump is the database's own tool writing into the root-only spool (config DUMP_SPOOL), as
`FILE.partial` renamed once complete, so a dump that failed or was cut off never passes for
one. Credentials come from the host's files, never argv: libpq's password file (PGPASSFILE)
or a MariaDB/MySQL option file (--defaults-extra-file); without one, the tools' defaults
(peer or socket authentication, ~/.pgpass, ~/.my.cnf). Nothing ever prompts (--no-password;
the MySQL tools only prompt when asked to with -p).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from agent.config.load import DUMP_SPOOL, Database

# The same names the inventory allows (agent/config/schema.json, database.name).
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$-]{0,62}$")
# sh -c WRITE sh FILE ARGV...: ARGV's stdout into FILE, root-only, renamed only when complete.
WRITE = 'umask 077; f=$1; shift; "$@" > "$f.partial" && mv -f -- "$f.partial" "$f"'
# sh -c BACKUP sh FILE ARGV...: ARGV writes FILE.partial itself (sqlite3 .backup).
BACKUP = 'umask 077; f=$1; shift; "$@" && mv -f -- "$f.partial" "$f"'
# sh -c LOAD sh FILE ARGV...: FILE (root-only) on ARGV's stdin, read as root for any user.
LOAD = 'f=$1; shift; exec "$@" < "$f"'
TOOLS = {  # type: (dump one, dump all, client)
    "postgresql": ("pg_dump", "pg_dumpall", "psql"),
    "mariadb": ("mariadb-dump", "mariadb-dump", "mariadb"),
    "mysql": ("mysqldump", "mysqldump", "mysql"),
}
MYSQL_DUMP_FLAGS = ("--single-transaction", "--routines", "--events", "--triggers", "--hex-blob")


def dump_file(database: Database) -> str:
    """Where the dump lands in the spool (and so in the host's backups)."""
    suffix = {"postgresql": ".dump", "sqlite": ".sqlite3"}.get(database.type, ".sql")
    if database.type == "postgresql" and database.name == "all":
        suffix = ".sql"  # pg_dumpall writes SQL
    return str(PurePosixPath(DUMP_SPOOL) / f"{database.type}-{database.name}{suffix}")


def prepare_spool() -> tuple[str, ...]:
    """An empty root-only spool (what a killed run left there goes)."""
    return ("sh", "-c", 'rm -rf -- "$1" && install -d -m 0700 -o root -g root -- "$1"', "sh",
            DUMP_SPOOL)  # fmt: skip


def clear_spool() -> tuple[str, ...]:
    return ("rm", "-rf", "--", DUMP_SPOOL)


def dump_command(database: Database) -> tuple[str, ...]:
    """The dump of `database` into its spool file."""
    file = dump_file(database)
    if database.type == "sqlite":
        assert database.path is not None
        # -readonly: a missing file is an error, never a new empty database
        tool = ("sqlite3", "-readonly", database.path, f".backup '{file}.partial'")
        return ("sh", "-c", BACKUP, "sh", file, *tool)
    one, every, _ = TOOLS[database.type]
    if database.type == "postgresql":
        tool = (every,) if database.name == "all" else (one, "--format=custom")
        tool += ("--no-password", *_pg_connection(database))
        if database.name != "all":
            tool += (f"--dbname={database.name}",)
    else:
        which = ("--all-databases",) if database.name == "all" else ("--", database.name)
        tool = (one, *_my_connection(database), *MYSQL_DUMP_FLAGS, *which)
    return ("sh", "-c", WRITE, "sh", file, *_as_user(database, tool))


def exists_query(database: Database, name: str) -> tuple[tuple[str, ...], str]:
    """(argv, stdin) that prints 1 if database `name` exists on the database's server."""
    _check(name)
    if database.type == "postgresql":
        argv = ("psql", "--no-password", "-XAtq", *_pg_connection(database),
                "--dbname=postgres", "-v", f"name={name}")  # fmt: skip
        return _as_user(database, argv), "SELECT 1 FROM pg_database WHERE datname = :'name';\n"
    client = TOOLS[database.type][2]
    sql = f"SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{name}';\n"  # noqa: S608 (NAME-checked)
    return _as_user(database, (client, *_my_connection(database), "-N", "-B")), sql


def create_command(database: Database, name: str) -> tuple[tuple[str, ...], str]:
    """(argv, stdin) that creates the empty database `name`."""
    _check(name)
    if database.type == "postgresql":
        # template0: a template1 with extensions (postgis...) would clash with the dump's own
        argv = ("createdb", "--no-password", "--template=template0", *_pg_connection(database),
                "--", name)  # fmt: skip
        return _as_user(database, argv), ""
    return _my_client(database), f"CREATE DATABASE `{name}`;\n"


def drop_command(database: Database, name: str) -> tuple[tuple[str, ...], str]:
    """(argv, stdin) that drops `name` again (a load that failed half-way)."""
    _check(name)
    if database.type == "postgresql":
        argv = ("dropdb", "--no-password", *_pg_connection(database), "--", name)
        return _as_user(database, argv), ""
    return _my_client(database), f"DROP DATABASE `{name}`;\n"


def load_command(database: Database, file: str, name: str) -> tuple[str, ...]:
    """Load dump `file` (on the host) into the existing, empty database `name`."""
    _check(name)
    if database.type == "postgresql":
        tool: tuple[str, ...] = ("pg_restore", "--no-password", "--exit-on-error",
                                 *_pg_connection(database), f"--dbname={name}")  # fmt: skip
    else:
        tool = (*_my_client(database), "--", name)
    return ("sh", "-c", LOAD, "sh", file, *_as_user(database, tool))


def _check(name: str) -> None:
    if not NAME.match(name):
        raise ValueError(f"not a database name: {name!r}")


def _as_user(database: Database, argv: tuple[str, ...]) -> tuple[str, ...]:
    """`argv` as the database's OS user (postgresql: postgres unless a password file is
    named, which is root's to read), with PGPASSFILE when named."""
    env = ("env", f"PGPASSFILE={database.credentials}") if database.credentials else ()
    if database.type != "postgresql":
        env = ()
    user = database.user or ("root" if database.credentials or database.type != "postgresql"
                             else "postgres")  # fmt: skip
    wrap = ("runuser", "-u", user, "--") if user != "root" else ()
    return (*wrap, *env, *argv)


def _pg_connection(database: Database) -> tuple[str, ...]:
    return (
        *((f"--host={database.host}",) if database.host else ()),
        *((f"--port={database.port}",) if database.port else ()),
        *((f"--username={database.role}",) if database.role else ()),
    )


def _my_connection(database: Database) -> tuple[str, ...]:
    """Option file first (the tools require it there), then where the server is."""
    return (
        *((f"--defaults-extra-file={database.credentials}",) if database.credentials else ()),
        *((f"--host={database.host}",) if database.host else ()),
        *((f"--port={database.port}",) if database.port else ()),
    )


def _my_client(database: Database) -> tuple[str, ...]:
    return _as_user(database, (TOOLS[database.type][2], *_my_connection(database)))
