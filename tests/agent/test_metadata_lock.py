"""Only root reaches the metadata service once init ran, and again after every reboot."""

from __future__ import annotations

import subprocess
import sys
import time

import yaml

from agent.paths import ServerPaths
from agent.server.metadata_lock import METADATA_IPV4, metadata_lock_rules
from provisioner.userdata import render_user_data
from tests.agent.dupctl_server import Server

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
PROBE = ["bash", "-c", f"exec 3<>/dev/tcp/{METADATA_IPV4}/80"]
LISTENER = (
    "import socket\n"
    f"s = socket.create_server(('{METADATA_IPV4}', 80))\n"
    "while True: s.accept()[0].close()\n"
)


def _serve_metadata(server: Server) -> subprocess.Popen[bytes]:
    """A stand-in metadata service on 169.254.169.254:80 inside the server's network."""
    for argv in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "addr", "add", f"{METADATA_IPV4}/32", "dev", "lo"],
    ):
        assert server.run(argv).returncode == 0, argv
    listener = subprocess.Popen(server.command([sys.executable, "-c", LISTENER]))
    while server.run(PROBE).returncode != 0:
        assert listener.poll() is None, "the stand-in metadata service died"
        time.sleep(0.05)
    return listener


def test_root_reaches_the_metadata_service_and_others_do_not(initialised: Server) -> None:
    listener = _serve_metadata(initialised)
    try:
        assert initialised.run(PROBE).returncode == 0
        refused = initialised.run([*NOBODY, *PROBE])
        assert refused.returncode != 0
        assert "Connection refused" in refused.stderr
    finally:
        listener.kill()
        listener.wait()


def test_cloud_inits_bootcmd_restores_the_lock_at_every_boot(initialised: Server) -> None:
    initialised.reboot()  # a fresh network namespace: no rules
    assert initialised.run(["nft", "list", "table", "inet", "dupstack_metadata"]).returncode != 0
    real_path = str(ServerPaths.from_root().metadata_lock)
    (bootcmd,) = yaml.safe_load(render_user_data())["bootcmd"]
    assert real_path in bootcmd[-1]

    done = initialised.run(
        [part.replace(real_path, str(ServerPaths.from_root(initialised.root).metadata_lock))
         for part in bootcmd]
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    listed = initialised.run(["nft", "list", "table", "inet", "dupstack_metadata"])
    assert f"ip daddr {METADATA_IPV4} meta skuid != 0 reject" in listed.stdout


def test_the_rules_cover_both_metadata_addresses() -> None:
    rules = metadata_lock_rules()
    assert "ip daddr 169.254.169.254 meta skuid != 0 reject" in rules
    assert "ip6 daddr fe80::a9fe:a9fe meta skuid != 0 reject" in rules
