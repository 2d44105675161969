"""Boot a backup server from a template's user-data, installing from a package index on
loopback: what cloud-init and Nova would do, with no public index reachable.

    index = PackageIndex(dir)                      # PEP 503 folders: .cache/wheelhouse + agent
    wheel = index.add(build_agent(dir))            # scripts/dist.py's dupstack-agent wheel
    with index.serve(run_in_netns) as url:         # python -m http.server on 127.0.0.1
        config = cloud_config(TEMPLATE, agent_version=..., agent_sha256=..., package_index=url)
        write_files(config, root)                  # cloud-init's write_files
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from provisioner.render import load_source

CHECKOUT = Path(__file__).resolve().parents[1]
WHEELHOUSE = CHECKOUT / ".cache" / "wheelhouse"  # `make deps`: the lock for this platform
PORT = 8080


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PackageIndex:
    """A PEP 503 "simple" index in a folder: simple/<project>/<file>, served as it is."""

    def __init__(self, root: Path) -> None:
        self.root = root
        if not any(WHEELHOUSE.glob("*.whl")):
            raise RuntimeError(f"{WHEELHOUSE} is empty: run `make deps`")
        for wheel in WHEELHOUSE.glob("*.whl"):
            self.add(wheel)

    def add(self, wheel: Path) -> Path:
        """Serve `wheel` (a copy: a test may tamper with it); its path in the index."""
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        folder = self.root / "simple" / project
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, folder / wheel.name)
        return folder / wheel.name

    @contextlib.contextmanager
    def serve(self, inside: Callable[[Sequence[str]], list[str]]) -> Iterator[str]:
        """The index, served through `inside` (see serve_folder); yields its URL."""
        with serve_folder(self.root, inside) as base:
            yield f"{base}/simple"


@contextlib.contextmanager
def serve_folder(root: Path, inside: Callable[[Sequence[str]], list[str]]) -> Iterator[str]:
    """http.server for `root` on 127.0.0.1:PORT, started through `inside` (argv -> argv run
    in a network namespace); yields the base URL; stopped by PID."""
    argv = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root),
            str(PORT)]  # fmt: skip
    server = subprocess.Popen(
        ["setpriv", "--pdeathsig", "KILL", "--", *inside(argv)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    connect = f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 1)"
    probe = inside(["python3", "-c", connect])
    deadline = time.monotonic() + 10
    while subprocess.run(probe, capture_output=True, check=False).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the HTTP server for {root} did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{PORT}"
    finally:
        server.kill()
        server.wait()


def user_data(template: Path, **values: str) -> str:
    """The user-data Nova would get from `template`: its text after Heat's str_replace, each
    token set from `values` (by parameter name) or the parameter's default."""
    source = load_source(template)
    defaults = {name: spec.get("default") for name, spec in source["parameters"].items()}
    str_replace = source["resources"]["server"]["properties"]["user_data"]["str_replace"]
    text = str_replace["template"]
    for token, value in str_replace["params"].items():
        if isinstance(value, dict) and "get_param" in value:
            name = value["get_param"]
            value = values.get(name, defaults.get(name))
        elif isinstance(value, dict):  # the volume: a resource's ID
            value = values["volume_id"]
        text = text.replace(token, str(value))
    return text


def cloud_config(template: Path, **values: str) -> dict[str, Any]:
    return yaml.safe_load(user_data(template, **values))


def write_files(config: dict[str, Any], root: Path) -> None:
    """cloud-init's write_files, under `root` (links are replaced, never written through)."""
    for entry in config["write_files"]:
        path = root / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        content = entry["content"]
        encoding = entry.get("encoding")
        data = base64.b64decode(content) if encoding in ("b64", "gz+b64") else content.encode()
        data = gzip.decompress(data) if encoding == "gz+b64" else data
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(data)
        path.chmod(int(entry.get("permissions", "0644"), 8))
