"""Database dumps with real servers on a tenant host: PostgreSQL and MariaDB (Debian's
packages) and an SQLite file, dumped before the backup, loaded back by `dupctl restore
--database` into new databases and compared row for row; wrong credentials fail the run with
the database's own error, and no password is ever in a command line. One fleet: `bs` and
db1; the tests run in order."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet import Fleet, Host
from fleet.backup import backup_server, dupctl, ok, set_host_options
from fleet.databases import MariaDB, Postgres
from tests.agent.backup_fleet import status, tenant

pytestmark = pytest.mark.root
PG_PASSWORD = "pg-Secret-4711"
MY_PASSWORD = "my-Secret-0815"
SPOOL = "/var/backups/dupstack"
SQLITE = "/opt/app/app.db"
DATABASES = [
    # over TCP with a password file (root's): the role and its password from files only
    {"type": "postgresql", "name": "shop", "host": "127.0.0.1", "role": "shopper",
     "credentials": "/root/shop.pgpass"},
    {"type": "mariadb", "name": "shop", "credentials": "/root/shop.my.cnf"},
    {"type": "sqlite", "name": "app", "path": SQLITE},
]  # fmt: skip


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        backup_server(fleet)
        tenant(fleet, "db1")
        yield fleet


@pytest.fixture(scope="module")
def bs(fleet: Fleet) -> Host:
    return fleet.hosts["bs"]


@pytest.fixture(scope="module")
def db1(fleet: Fleet) -> Host:
    return fleet.hosts["db1"]


@pytest.fixture(scope="module")
def pg(db1: Host) -> Iterator[Postgres]:
    server = Postgres.start(db1)
    server.sql(f"CREATE ROLE shopper LOGIN PASSWORD '{PG_PASSWORD}' CREATEDB")
    server.sql("CREATE DATABASE shop OWNER shopper")
    server.sql("CREATE TABLE orders (id int PRIMARY KEY, item text, price numeric);"
               "ALTER TABLE orders OWNER TO shopper;"
               "INSERT INTO orders SELECT i, 'item ' || i, i * 1.5 FROM generate_series(1, 500) i",
               "shop")  # fmt: skip
    secret_file(db1, "/root/shop.pgpass", f"127.0.0.1:5432:*:shopper:{PG_PASSWORD}\n")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def my(db1: Host) -> Iterator[MariaDB]:
    server = MariaDB.start(db1)
    server.sql(f"CREATE USER shopper@localhost IDENTIFIED BY '{MY_PASSWORD}'")
    server.sql(
        "GRANT ALL ON *.* TO shopper@localhost; CREATE DATABASE shop; USE shop;"
        "CREATE TABLE orders (id int PRIMARY KEY, item text);"
        "INSERT INTO orders SELECT seq, CONCAT('item ', seq) FROM seq_1_to_300;"
    )
    secret_file(db1, "/root/shop.my.cnf", f"[client]\nuser=shopper\npassword={MY_PASSWORD}\n")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def configured(bs: Host, db1: Host, pg: Postgres, my: MariaDB) -> None:
    db1.path("/opt/app").mkdir(parents=True, exist_ok=True)
    db1.run(["sqlite3", SQLITE, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
             "INSERT INTO notes (body) VALUES ('first'), ('second');"])  # fmt: skip
    set_host_options(bs, "db1", databases=DATABASES)


def secret_file(host: Host, path: str, text: str) -> None:
    file = host.path(path)
    file.write_text(text)
    file.chmod(0o600)


class Cmdlines:
    """Every process's command line, sampled while it runs (all fleet hosts share pids)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self.stop.is_set():
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    try:
                        self.seen.add(
                            Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
                        )
                    except OSError:
                        continue

    def __enter__(self) -> Cmdlines:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def orders_pg(pg: Postgres, database: str) -> str:
    return pg.sql("SELECT id, item, price FROM orders ORDER BY id", database)


def orders_my(my: MariaDB, database: str) -> str:
    return my.sql("SELECT id, item FROM orders ORDER BY id", database)


@pytest.mark.usefixtures("configured")
def test_dumps_are_backed_up_and_load_back_into_new_databases_row_for_row(
    bs: Host, db1: Host, pg: Postgres, my: MariaDB
) -> None:
    with Cmdlines() as cmdlines:
        done = dupctl(bs, "backup", "db1", "--json")
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)
    steps = [(h["hook"], h["step"], h["result"]) for h in run["hooks"] if h["hook"] == "databases"]
    assert steps == [
        ("databases", f"empty {SPOOL}", "ok"),
        ("databases", "dump postgresql:shop", "ok"),
        ("databases", "dump mariadb:shop", "ok"),
        ("databases", "dump sqlite:app", "ok"),
        ("databases", f"remove {SPOOL}", "ok"),
    ]
    assert not db1.path(SPOOL).exists()  # removed after the run
    seen = "\n".join(cmdlines.seen)
    assert "pg_dump" in seen and "mariadb-dump" in seen  # the sampler saw the dumps run
    assert PG_PASSWORD not in seen and MY_PASSWORD not in seen
    listing = ok(dupctl(bs, "list", "db1"))
    for file in ("postgresql-shop.dump", "mariadb-shop.sql", "sqlite-app.sqlite3"):
        assert f"{SPOOL}/{file}" in listing

    ok(dupctl(bs, "restore", "db1", "--database", "postgresql:shop", "--into", "shop_copy"))
    assert orders_pg(pg, "shop_copy") == orders_pg(pg, "shop")
    assert len(orders_pg(pg, "shop_copy").splitlines()) == 500
    said = ok(dupctl(bs, "restore", "db1", "--database", "mariadb:shop"))
    [restored] = [w for w in my.sql("SHOW DATABASES").split() if w.startswith("shop_restored_")]
    assert restored in said
    assert orders_my(my, restored) == orders_my(my, "shop")
    assert len(orders_my(my, restored).splitlines()) == 300
    ok(dupctl(bs, "restore", "db1", "--database", "app", "--into", "/opt/app/back.db"))
    rows = db1.run(["sqlite3", "/opt/app/back.db", "SELECT body FROM notes ORDER BY id"]).stdout
    assert rows == "first\nsecond\n"
    assert not list(db1.path("/var/tmp").glob("dupstack-restore.*"))  # scratch removed


@pytest.mark.usefixtures("configured")
def test_a_restore_as_of_an_earlier_time_loads_that_state(
    bs: Host, pg: Postgres, my: MariaDB
) -> None:
    then = status(bs, "db1")["last_run"]["end"]
    pg.sql("DELETE FROM orders WHERE id > 100", "shop")
    my.sql("DELETE FROM orders WHERE id > 100", "shop")
    ok(dupctl(bs, "backup", "db1"))
    ok(dupctl(bs, "restore", "db1", "--database", "postgresql:shop", "--into", "shop_now"))
    assert len(orders_pg(pg, "shop_now").splitlines()) == 100
    ok(dupctl(bs, "restore", "db1", "--database", "postgresql:shop", "--time", then,
              "--into", "shop_then"))  # fmt: skip
    assert len(orders_pg(pg, "shop_then").splitlines()) == 500
    ok(dupctl(bs, "restore", "db1", "--database", "mariadb:shop", "--time", then,
              "--into", "shop_then"))  # fmt: skip
    assert len(orders_my(my, "shop_then").splitlines()) == 300


@pytest.mark.usefixtures("configured")
def test_a_restore_never_loads_into_an_existing_database(bs: Host, pg: Postgres) -> None:
    before = orders_pg(pg, "shop")
    done = dupctl(bs, "restore", "db1", "--database", "postgresql:shop", "--into", "shop")
    assert done.returncode == 2
    assert "database shop exists on db1: restore never overwrites" in done.stderr
    assert orders_pg(pg, "shop") == before
    done = dupctl(bs, "restore", "db1", "--database", "shop")
    assert done.returncode == 2
    assert "several databases called 'shop'" in done.stderr
    assert "--database postgresql:shop" in done.stderr
    done = dupctl(bs, "restore", "db1", "--database", "nope")
    assert done.returncode == 2
    assert "postgresql:shop, mariadb:shop, sqlite:app" in done.stderr


@pytest.mark.usefixtures("configured")
def test_wrong_credentials_fail_the_run_with_the_databases_own_error(bs: Host, db1: Host) -> None:
    sets = status(bs, "db1")["sets"]
    secret_file(db1, "/root/shop.pgpass", "127.0.0.1:5432:*:shopper:wrong\n")
    done = dupctl(bs, "backup", "db1")
    assert done.returncode == 13, done.stderr
    assert 'password authentication failed for user "shopper"' in done.stderr
    assert "nothing was backed up" in done.stderr
    secret_file(db1, "/root/shop.pgpass", f"127.0.0.1:5432:*:shopper:{PG_PASSWORD}\n")
    secret_file(db1, "/root/shop.my.cnf", "[client]\nuser=shopper\npassword=wrong\n")
    done = dupctl(bs, "backup", "db1")
    assert done.returncode == 13, done.stderr
    assert "Access denied for user 'shopper'@'localhost'" in done.stderr
    assert status(bs, "db1")["sets"] == sets
    assert not db1.path(SPOOL).exists()  # removed after a failed run too
    secret_file(db1, "/root/shop.my.cnf", f"[client]\nuser=shopper\npassword={MY_PASSWORD}\n")
    ok(dupctl(bs, "backup", "db1"))
