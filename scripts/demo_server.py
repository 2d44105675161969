"""Demo: boot a local "backup server" from the committed Heat template's user-data.

Real cloud-init cannot boot here, so this does what it would do with the same cloud-config:
write its write_files (under a server root folder), run its runcmd (the template's installer:
the agent wheel built from this checkout and its hash-locked dependencies, from a package
index served on loopback inside the server's network namespace, which reaches no other index)
and `dupctl init`, with its own mount namespace and a loop device as the Cinder volume. Then
it reboots the server, and finally boots a second server from the *restore* template on the
same volume. Everything is removed at the end; the machine's own /etc, /mnt, fstab and
firewall are never touched.

    sudo .venv/bin/python scripts/demo_server.py
"""

from __future__ import annotations

import base64
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet import boot  # noqa: E402
from provisioner.render import RESTORE_TEMPLATE, TEMPLATE  # noqa: E402
from scripts.dist import build_agent, project_version  # noqa: E402

PASSCODE = "demo passcode: keep it safe!"
VOLUME_ID = "d3m0d3m0-0000-4000-8000-000000000001"
OPT = "/opt/dupstack"


def section(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def sh(argv: list[str], capture: bool = False) -> str:
    """Run a host command; its output if `capture`."""
    return subprocess.run(argv, check=True, text=True, capture_output=capture).stdout


class LocalServer:
    """A server root folder plus a process holding its network and mount namespaces."""

    def __init__(self, name: str, root: Path, netns: str, volume: str) -> None:
        self.name, self.root, self.netns, self.volume = name, root, netns, volume
        self.holder: subprocess.Popen[bytes] | None = None

    def boot(self) -> None:
        self.holder = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--propagation",
             "private", "sleep", "infinity"]
        )  # fmt: skip
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt"):
            time.sleep(0.01)

    def halt(self) -> None:
        if self.holder is not None:
            self.run(["gpgconf", "--homedir", f"{self.root}/etc/duplicity/gnupg", "--kill",
                      "gpg-agent"], check=False)  # fmt: skip
            self.holder.kill()
            self.holder.wait()
            self.holder = None

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.holder is not None
        inside = ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv]
        return subprocess.run(inside, check=check, text=True)

    def apply_write_files(self, config: dict) -> None:
        """cloud-init's write_files, under the server root."""
        boot.write_files(config, self.root)
        for entry in config["write_files"]:
            print(f"  wrote {entry['path']} ({entry.get('permissions')})")

    def dupctl(self, *args: str) -> list[str]:
        """The runcmd's `dupctl init`, pointed at this server's root and loop volume."""
        return [f"{self.root}{OPT}/current/bin/dupctl", "--root", str(self.root), *args,
                "--device", self.volume, "--wait", "10"]  # fmt: skip

    def show_state(self) -> None:
        etc, mnt = f"{self.root}/etc", f"{self.root}/mnt/vdb"
        for title, argv in (
            ("/etc/duplicity", ["find", f"{etc}/duplicity", "-printf", "%M %u:%g %P\n"]),
            ("/etc/duplicity/dup_vars.sh", ["cat", f"{etc}/duplicity/dup_vars.sh"]),
            ("/mnt/vdb", ["findmnt", "-n", "-o", "SOURCE,FSTYPE,LABEL,UUID", mnt]),
            ("/mnt/vdb contents", ["ls", "-la", mnt, f"{mnt}/.dupstack"]),
            ("/etc/fstab", ["cat", f"{etc}/fstab"]),
            ("/etc/cron.d/dupstack", ["cat", f"{etc}/cron.d/dupstack"]),
            ("metadata lock", ["nft", "list", "table", "inet", "dupstack_metadata"]),
            (
                "passcode file",
                [
                    "sh",
                    "-c",
                    f"ls {self.root}/run/dupstack/passcode "
                    "2>/dev/null || echo 'gone (shredded by init)'",
                ],
            ),
        ):
            print(f"--- {title}", flush=True)
            self.run(argv, check=False)


def install_agent(server: LocalServer) -> None:
    """runcmd's first half: the template's installer, under the server root."""
    installer = server.root / "usr/local/sbin/dupstack-install"
    env = {"DUPSTACK_PREFIX": f"{server.root}{OPT}",
           "DUPSTACK_INSTALL_ENV": f"{server.root}/etc/dupstack/install.env"}  # fmt: skip
    print(f"  $ {installer.relative_to(server.root).as_posix()}   (here: under {server.root})")
    done = subprocess.run(
        ["ip", "netns", "exec", server.netns, str(installer)],
        env={**os.environ, **env}, capture_output=True, text=True,
    )  # fmt: skip
    print("".join(f"  {line}\n" for line in (done.stdout + done.stderr).splitlines()), end="")
    if done.returncode != 0:
        raise SystemExit("demo: the agent install failed")


def main() -> int:
    if os.geteuid() != 0:
        print("demo_server: needs root (namespaces, loop devices)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="dupstack-demo-", dir="/tmp"))
    netns = f"dupstack-demo-{os.getpid()}"
    image, loop = work / "volume.img", ""
    servers: list[LocalServer] = []
    try:
        section("the agent: a dupstack-agent wheel of this checkout, in a package index")
        wheel = build_agent(work / "dist")
        index = boot.PackageIndex(work / "index")
        index.add(wheel)
        pins = {"agent_version": project_version(), "agent_sha256": boot.sha256(wheel),
                "package_index": f"http://127.0.0.1:{boot.PORT}/simple"}  # fmt: skip
        print(f"  {wheel.name} sha256 {pins['agent_sha256']}")
        print(f"  {len(list(index.root.rglob('*.whl')))} wheels; served at {pins['package_index']}")

        section("user-data from heat/dupstack.heat.yaml, after Heat's str_replace")
        user_data = boot.user_data(
            TEMPLATE, passcode=PASSCODE, volume_id=VOLUME_ID, ssh_user="debian", **pins
        )
        (work / "user-data.yaml").write_text(user_data)
        print(f"  {len(user_data.encode())} bytes; base64 for Nova: "
              f"{len(base64.b64encode(user_data.encode()))} of 65535 (budget 16384)")  # fmt: skip
        sh([str(ROOT / "scripts" / "cloud-init-schema"), str(work / "user-data.yaml")])
        config = yaml.safe_load(user_data)

        section("a server: network namespace + mount namespace + a 256 MB loop volume")
        sh(["truncate", "-s", "256M", str(image)])
        loop = sh(["losetup", "--find", "--show", str(image)], capture=True).strip()
        sh(["ip", "netns", "add", netns])
        sh(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"])  # for the index
        server = LocalServer("server", work / "server", netns, loop)
        servers.append(server)
        server.boot()
        print(f"  netns {netns}, volume {loop}, server root {server.root}")

        section("cloud-init write_files")
        server.apply_write_files(config)
        section("cloud-init runcmd: install the pinned agent and duplicity (hash-checked)")
        with index.serve(lambda argv: ["ip", "netns", "exec", netns, *argv]):
            install_agent(server)
        section("cloud-init runcmd: dupctl init")
        print(f"  $ {shlex.join(config['runcmd'][-1])}   (here: --root, --device {loop})")
        server.run(server.dupctl("init"))
        server.show_state()

        section("reboot: the mounts are gone; the per-boot hook reruns init")
        server.halt()
        server.boot()
        server.run(server.dupctl("init"))

        section("the stack is deleted; the restore template boots a new server on the volume")
        server.halt()
        restored = LocalServer("restored", work / "restored", netns, loop)
        servers.append(restored)
        restored.boot()
        restore_config = boot.cloud_config(
            RESTORE_TEMPLATE, passcode=PASSCODE, volume_id=VOLUME_ID, ssh_user="debian", **pins
        )
        restored.apply_write_files(
            {"write_files": [e for e in restore_config["write_files"] if "/opt/" not in e["path"]]}
        )
        (restored.root / OPT.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        (restored.root / OPT.lstrip("/")).symlink_to(server.root / OPT.lstrip("/"))
        restored.run(restored.dupctl("init"))
        print("--- the same key, back from the escrow with the passcode:")
        restored.run(["grep", "ENCRYPT_KEY=", f"{restored.root}/etc/duplicity/dup_vars.sh"])
        restored.run(["grep", "ENCRYPT_KEY=", f"{server.root}/etc/duplicity/dup_vars.sh"])
    finally:
        section("cleanup")
        for each in servers:
            each.halt()
        subprocess.run(["ip", "netns", "del", netns], check=False, stderr=subprocess.DEVNULL)
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False)
        subprocess.run(["rm", "-rf", str(work)], check=False)
        print(f"  removed {netns}, {loop or 'no loop device'}, {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
