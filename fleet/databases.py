"""Real database servers inside a fleet host (Debian's postgresql and mariadb-server
binaries; their data under the host's overlaid /var, sockets in its /run).

    pg = Postgres.start(host)        # socket /run/postgresql, 127.0.0.1:5432 with passwords
    pg.sql("CREATE DATABASE shop")
    pg.stop()                        # by PID
"""

from __future__ import annotations

import glob
import subprocess
import time
from dataclasses import dataclass

from fleet import DIE_WITH_PARENT, HOST_ENV, Host

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1:] or ["/usr/lib/postgresql/bin"]


def _wait(host: Host, process: subprocess.Popen[str], probe: list[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while host.run(probe, check=False).returncode != 0:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{host.name}: {what} did not start (exit {process.poll()})")
        time.sleep(0.2)


@dataclass
class Postgres:
    """A PostgreSQL server in `host`: peer auth on its socket, passwords over TCP."""

    host: Host
    process: subprocess.Popen[str]

    @classmethod
    def start(cls, host: Host) -> Postgres:
        data = "/var/lib/pgtest"
        host.run(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "0700", data])
        host.run(["install", "-d", "-o", "postgres", "-g", "postgres", "-m", "2775",
                  "/run/postgresql"])  # fmt: skip
        host.run(["runuser", "-u", "postgres", "--", f"{PG_BIN[0]}/initdb", "-D", data, "-U",
                  "postgres", "--auth-local=peer", "--auth-host=scram-sha-256"])  # fmt: skip
        # setpriv execs (runuser would fork): the PID is the server's, stop() ends it
        server = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--",
                  f"{PG_BIN[0]}/postgres", "-D", data,
                  "-k", "/run/postgresql", "-c", "listen_addresses=127.0.0.1"]  # fmt: skip
        log = (host.fleet.dir / f"{host.name}.postgres.log").open("a")
        process = subprocess.Popen(
            [*DIE_WITH_PARENT, *host.keeper.nsenter(server)],
            stdout=log, stderr=log, env=HOST_ENV, text=True,
        )  # fmt: skip
        log.close()
        probe = ["runuser", "-u", "postgres", "--", "psql", "-XAtqc", "SELECT 1"]
        _wait(host, process, probe, "postgres")
        return cls(host, process)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the socket; its unaligned output."""
        argv = ["runuser", "-u", "postgres", "--", "psql", "-XAtq", "-v", "ON_ERROR_STOP=1",
                "-d", database]  # fmt: skip
        return self.host.run(argv, input=statement).stdout

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class MariaDB:
    """A MariaDB server in `host`: root by socket authentication, no TCP."""

    host: Host
    process: subprocess.Popen[str]

    @classmethod
    def start(cls, host: Host) -> MariaDB:
        data = "/var/lib/mysqltest"
        host.run(["mariadb-install-db", "--user=mysql", f"--datadir={data}", "--skip-test-db",
                  "--auth-root-authentication-method=socket"])  # fmt: skip
        host.run(["install", "-d", "-o", "mysql", "-g", "mysql", "/run/mysqld"])
        server = ["mariadbd", "--no-defaults", "--user=mysql", f"--datadir={data}",
                  "--socket=/run/mysqld/mysqld.sock", "--pid-file=/run/mysqld/mysqld.pid",
                  "--skip-networking", f"--log-error={data}/error.log"]  # fmt: skip
        process = subprocess.Popen(
            [*DIE_WITH_PARENT, *host.keeper.nsenter(server)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=HOST_ENV, text=True,
        )  # fmt: skip
        _wait(host, process, ["mariadb-admin", "ping", "--silent"], "mariadbd")
        return cls(host, process)

    def sql(self, statement: str, database: str | None = None) -> str:
        """Run SQL as root over the socket; tab-separated rows, no headers."""
        argv = ["mariadb", "-N", "-B", *([database] if database else [])]
        return self.host.run(argv, input=statement).stdout

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
