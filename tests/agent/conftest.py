"""Fixtures: a loop-device volume and local backup servers on it (see dupctl_server.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agent.dupctl_server import LoopVolume, Server


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[LoopVolume]:
    loop = LoopVolume(tmp_path / "volume.img")
    yield loop
    loop.detach()


@pytest.fixture
def make_server(volume: LoopVolume) -> Iterator[Callable[[str], Server]]:
    """Factory of servers on the test's volume: `make_server("name")`."""
    # A short root: gpg-agent's socket lives in the keyring folder, and socket paths are
    # limited to 108 bytes (pytest's tmp_path is too deep).
    top = Path(tempfile.mkdtemp(prefix="dupctl-", dir="/tmp"))
    servers: list[Server] = []

    def make(name: str = "server") -> Server:
        servers.append(Server(top / name, volume))
        return servers[-1]

    yield make
    for server in servers:
        server.shutdown()
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def server(make_server: Callable[[str], Server]) -> Server:
    return make_server()


@pytest.fixture
def initialised(server: Server) -> Server:
    """A server after a successful first `init` (create mode) on a blank volume."""
    server.write_passcode()
    done = server.init("--mode", "create")
    assert done.returncode == 0, done.stderr
    return server
