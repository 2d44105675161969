"""Serve Keystone or Heat (API and engine in one process) on an inherited socket.

Runs under the OpenStack venv's python, never imported by the client side:

    python _runner.py keystone --fd N --config keystone.conf
    python _runner.py heat --fd N --config heat.conf

The parent process binds the listening socket (so the port is known before the
service starts and no other process can take it) and passes its descriptor.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import socketserver
import sys
import threading
import time
from typing import Any
from wsgiref import simple_server


def _sqlite_wal() -> None:
    """WAL journal on every SQLite connection: readers never block the writer."""
    import sqlalchemy
    from sqlalchemy import event

    @event.listens_for(sqlalchemy.engine.Engine, "connect")
    def _on_connect(dbapi_con: Any, _record: Any) -> None:
        if type(dbapi_con).__module__.startswith("sqlite3"):
            dbapi_con.execute("PRAGMA journal_mode=WAL")


def _sqlite_begin_immediate() -> None:
    """Turn oslo.db's deferred SQLite ``BEGIN`` into ``BEGIN IMMEDIATE``.

    With a deferred BEGIN two threads that both read then write fail with
    "database is locked" (SQLite cannot upgrade a stale read snapshot). Taking
    the write lock at BEGIN makes them queue on the busy timeout instead.
    Installed after migrations, which nest connections on purpose.
    """
    import sqlalchemy
    from sqlalchemy import event

    @event.listens_for(sqlalchemy.engine.Engine, "before_cursor_execute", retval=True)
    def _on_execute(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> tuple[str, Any]:
        if statement == "BEGIN" and conn.dialect.name == "sqlite":
            return "BEGIN IMMEDIATE", params
        return statement, params


class _Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    request_queue_size = 64


class _Handler(simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logging.getLogger("access").info("%s %s", self.address_string(), format % args)


def _serve(app: Any, fd: int) -> _Server:
    """Serve ``app`` on the listening socket ``fd`` in a background thread."""
    sock = socket.socket(fileno=fd)
    server = _Server(sock.getsockname(), _Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
    server.server_name, server.server_port = "127.0.0.1", sock.getsockname()[1]
    server.setup_environ()
    server.set_app(app)
    threading.Thread(target=server.serve_forever, name="wsgi", daemon=True).start()
    return server


def _wait_for_signal(parent_pid: int) -> None:
    """Block until SIGTERM/SIGINT, or until the parent that started us is gone."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1):
        if parent_pid and os.getppid() != parent_pid:
            return


def _access_log(path: str) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log = logging.getLogger("access")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def run_keystone(args: argparse.Namespace) -> None:
    """Keystone's Flask app (the same one mod_wsgi/uwsgi would load)."""
    os.environ["OS_KEYSTONE_CONFIG_FILES"] = args.config
    sys.argv = sys.argv[:1]  # keystone parses the command line itself
    _sqlite_wal()
    _sqlite_begin_immediate()
    from keystone.server import wsgi

    app = wsgi.initialize_public_application()
    server = _serve(app, args.fd)
    print("READY", flush=True)
    _wait_for_signal(args.parent_pid)
    server.shutdown()


class _SameMappingFilter(logging.Filter):
    """Drop Heat's "Changing X from A to A" warning.

    A wildcard mapping (``OS::Neutron::*``) in a stack's environment is
    re-registered, identical, every time Heat reloads that stack.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        return not (
            isinstance(args, dict)
            and str(record.msg).startswith("Changing ")
            and args.get("was") == args.get("now")
        )


def _task_sleep(self: Any, wait_time: float | None) -> None:
    """``TaskRunner._sleep`` as it is with ``ENABLE_SLEEP`` on."""
    if wait_time is not None:
        time.sleep(wait_time)


def run_heat(args: argparse.Namespace) -> None:
    """heat-api and heat-engine in one process, talking over ``fake://``."""
    from oslo_service import backend

    backend.init_backend(backend.BackendType.THREADING)
    _sqlite_wal()

    import oslo_i18n
    from heat.common import config, messaging, profiler
    from heat.db import migration
    from heat.rpc import api as rpc_api
    from oslo_config import cfg
    from oslo_log import log as oslo_logging

    from heat import version

    oslo_i18n.enable_lazy()
    conf = cfg.CONF
    oslo_logging.register_options(conf)
    conf(
        args=[],
        project="heat",
        prog="heat-engine",
        version=version.version_info.version_string(),
        default_config_files=[args.config],
    )
    oslo_logging.setup(conf, "heat")
    logging.getLogger("heat.engine.environment").addFilter(_SameMappingFilter())
    config.set_config_defaults()
    messaging.setup()
    config.startup_sanity_check()
    migration.db_sync()
    _sqlite_begin_immediate()

    from heat.engine import scheduler
    from heat.engine import service as engine_service

    # Heat pauses 1 s between starting each independent resource (to spread
    # load on real services); the stand-ins need no such pause. Task polling
    # keeps its normal sleeps.
    scheduler.ENABLE_SLEEP = False
    scheduler.TaskRunner._sleep = _task_sleep  # type: ignore[method-assign]

    profiler.setup("heat-engine", conf.host)
    engine = engine_service.EngineService(conf.host, rpc_api.ENGINE_TOPIC)
    engine.start()
    app = config.load_paste_app("heat-api")
    server = _serve(app, args.fd)
    print("READY", flush=True)
    _wait_for_signal(args.parent_pid)
    server.shutdown()
    stopper = threading.Thread(target=engine.stop, daemon=True)
    stopper.start()
    stopper.join(5)


def main(argv: list[str] | None = None) -> None:
    """Entry point: ``keystone`` or ``heat``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("service", choices=["keystone", "heat"])
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--access-log", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    _access_log(args.access_log)
    started = time.monotonic()
    {"keystone": run_keystone, "heat": run_heat}[args.service](args)
    print(f"stopped after {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
