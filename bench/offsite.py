"""The offsite cases' parts: moto's S3 on 127.0.0.1, a dupctl test root holding one host and
one S3 target, and the plain boto3 upload that is their baseline.

    python -m bench.offsite serve                              # what MotoServer starts
    python -m bench.offsite put ENDPOINT BUCKET PREFIX FOLDER --client-config JSON

moto runs in a process of its own, not in a thread of the runner, so that its request handling
does not share a GIL with the runner's memory sampler, the objects it spills to disk land in
the case's TMPDIR, and it can be stopped by PID (and dies with the runner: setpriv
--pdeathsig). Its CPU and memory are in neither case's figures.

The agent's modules are imported inside the functions that the runner calls: the `put`
process, which is timed, loads boto3 and nothing of dupstack.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import select
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from bench.sshd import stop_process

REPO = Path(__file__).resolve().parent.parent
HOST = "bench-offsite"
TARGET = "bench"
BUCKET = "bench-offsite"
PREFIX = "dupstack"  # objects are PREFIX/HOST/NAME, as dupctl names them
REGION = "us-east-1"
CREDENTIALS = "/etc/dupstack/offsite/bench.ini"  # inside the test root
FAKE_KEY = "bench"  # moto takes any credentials
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def clean_env(home: Path, *, keys: bool = False) -> list[str]:
    """`env -i ...`: a root shell's environment with no AWS settings of the runner's (profile,
    config file, endpoint) and no instance-metadata lookup; the fake keys if `keys`."""
    settings = [f"PATH={PATH}", f"HOME={home}", "LANG=C.UTF-8", "AWS_EC2_METADATA_DISABLED=true"]
    if keys:
        settings += [f"AWS_ACCESS_KEY_ID={FAKE_KEY}", f"AWS_SECRET_ACCESS_KEY={FAKE_KEY}"]
    return ["env", "-i", *settings]


def client_options() -> dict[str, Any]:
    """dupstack's boto3 client settings (agent/offsite/s3.py TIMEOUTS), JSON-able, for `put`: the
    baseline uses the same client without paying for the agent's imports (~0.07 s)."""
    from agent.offsite.s3 import TIMEOUTS

    base = Config()
    return {
        name: getattr(TIMEOUTS, name)
        for name in Config.OPTION_DEFAULTS
        if getattr(TIMEOUTS, name) != getattr(base, name)
    }


class MotoServer:
    """moto's S3 on 127.0.0.1, on a port the kernel picks, in a process of its own."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server; return once it listens (it prints its port when it does)."""
        tmp = self.dir / "tmp"  # where moto spills objects above 5 MB
        tmp.mkdir(parents=True)
        log = self.dir / "moto.log"
        with open(log, "ab") as err:
            self._proc = subprocess.Popen(
                [*DIE_WITH_PARENT, sys.executable, "-m", "bench.offsite", "serve"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                cwd=REPO,
                env={"PATH": PATH, "HOME": str(self.dir), "TMPDIR": str(tmp)},
            )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto did not start within {timeout:.0f} s; see {log}")
        self.port = int(line)

    def client(self) -> Any:
        """A boto3 client of this server (the runner's, for set-up and checks)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=FAKE_KEY,
            aws_secret_access_key=FAKE_KEY,
        )

    def empty_bucket(self) -> None:
        """BUCKET, new and empty: moto's reset drops every bucket (and frees their objects'
        memory and spill files), then BUCKET is made again."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("POST", "/moto-api/reset")
            if (status := connection.getresponse().status) != 200:
                raise RuntimeError(f"moto's reset answered {status}")
        finally:
            connection.close()
        self.client().create_bucket(Bucket=BUCKET)

    def objects(self) -> dict[str, int]:
        """{key: size} of every object in BUCKET."""
        found = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            found |= {item["Key"]: item["Size"] for item in page.get("Contents", ())}
        return found

    def stop(self) -> None:
        """Stop the server by its PID."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def write_root(root: Path, endpoint: str, volsize_mb: int) -> Path:
    """A dupctl test root (`dupctl --root ROOT`): an inventory with host HOST (`volsize_mb`)
    and target TARGET (S3 at `endpoint`, STANDARD), its credentials file (root's, 0600);
    returns the host's backups folder (made, empty), where dupctl looks for sealed files."""
    from agent.config.load import load_inventory
    from agent.paths import ServerPaths
    from agent.repository import backups_dir

    paths = ServerPaths.from_root(root)
    credentials = paths.under(CREDENTIALS)
    credentials.parent.mkdir(parents=True)
    credentials.touch(mode=0o600)
    credentials.write_text(f"aws_access_key_id = {FAKE_KEY}\naws_secret_access_key = {FAKE_KEY}\n")
    target = {
        "type": "s3",
        "endpoint_url": endpoint,
        "region": REGION,
        "bucket": BUCKET,
        "prefix": PREFIX,
        "storage_class": "STANDARD",
        "credentials_file": CREDENTIALS,
    }
    inventory = {
        "server": {"address": "127.0.0.1"},
        "hosts": {HOST: {"address": "127.0.0.1", "volsize": volsize_mb}},
        "offsite": {"push_after_backup": False, "targets": {TARGET: target}},
    }
    paths.config_file.parent.mkdir(parents=True)
    paths.config_file.touch(mode=0o600)
    paths.config_file.write_text(json.dumps(inventory, indent=2) + "\n")  # JSON is YAML
    folder = backups_dir(paths, load_inventory(paths).host(HOST))
    folder.mkdir(parents=True)
    return folder


def forget_pushes(root: Path) -> None:
    """Remove the test root's push ledgers (the host's and the escrow's), so that every repeat
    is a first push: nothing recorded, nothing there."""
    from agent.offsite.ledger import ledger_file
    from agent.paths import ServerPaths

    shutil.rmtree(ledger_file(ServerPaths.from_root(root), TARGET, HOST).parent, ignore_errors=True)


def put(endpoint: str, bucket: str, prefix: str, folder: Path, options: dict[str, Any]) -> None:
    """The baseline: one put_object per file of `folder`, in name order, one at a time."""
    client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, config=Config(**options))
    for file in sorted(folder.iterdir()):
        with file.open("rb") as body:
            client.put_object(Bucket=bucket, Key=f"{prefix}/{file.name}", Body=body)


def serve() -> None:
    """moto's S3 on 127.0.0.1; print the port once it listens, serve until killed."""
    from moto.server import ThreadedMotoServer  # only this process loads moto

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    threading.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.offsite", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="moto's S3 on 127.0.0.1 (prints its port)")
    upload = commands.add_parser("put", help="one put_object per file (the baseline)")
    upload.add_argument("endpoint")
    upload.add_argument("bucket")
    upload.add_argument("prefix")
    upload.add_argument("folder", type=Path)
    upload.add_argument("--client-config", type=json.loads, default={}, metavar="JSON")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve()
    else:
        put(args.endpoint, args.bucket, args.prefix, args.folder, args.client_config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
