"""docs/disaster-recovery.md works: its commands, run as written on a machine that never had
dupstack, recover a host's files from nothing but the volume and the passcode."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from agent.host_passphrase import host_passphrase
from agent.keys.escrow import README_TEXT
from fleet import Fleet, Host
from fleet.backup import (
    PASSCODE,
    backup_server,
    dupctl,
    ok,
    tenant,
    tree,
    write_tree,
)

pytestmark = pytest.mark.root
DOC = Path(__file__).resolve().parents[2] / "docs" / "disaster-recovery.md"
BUCKET = "offsite-copies"
CREDENTIALS = "/etc/dupstack/offsite/copy.ini"
WHEELHOUSE = Path(__file__).resolve().parents[2] / ".cache" / "wheelhouse"  # duplicity's wheel


def procedure(host: str, volume: str) -> str:
    """The doc's first `bash` block (from the volume), with its host and volume lines set."""
    return block(0, H=host, VOLUME=volume)


def block(index: int, **settings: str) -> str:
    """The doc's `bash` block `index` (0: from the volume, 1: from an offsite copy), with
    the lines that set `settings` set to them."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 2, "the procedures are the doc's two bash blocks"
    script = blocks[index]
    for name, value in settings.items():
        line = re.compile(rf"^{name}=\S+", re.MULTILINE)
        script, count = line.subn(f"{name}={shlex.quote(value)}", script, count=1)
        assert count == 1, f"the procedure sets {name} on a line of its own"
    return script


def commands(text: str) -> list[str]:
    """Shell commands, one per line: continued lines joined, blanks squeezed."""
    return [" ".join(line.split()) for line in text.replace("\\\n", " ").splitlines()]


def attach_dirty_copy(bs: Host, fleet: Fleet) -> tuple[Path, Path]:
    """The volume as a server that died leaves it: its image copied while `bs` still has it
    mounted (never cleanly unmounted: its journal needs recovery), then `bs` killed and the
    copy attached read-only as a new device, for another host to recover from. (device,
    image)."""
    assert bs.device is not None
    bs.run(["sync"])
    dirty = fleet.dir / "dirty.img"
    subprocess.run(["cp", "--sparse=always", str(fleet.dir / "vdb.img"), str(dirty)], check=True)
    bs.kill()
    deadline = time.monotonic() + 10
    while Path(f"/sys/block/{bs.device.name}/loop").exists():  # ext4 let go of it
        assert time.monotonic() < deadline, f"{bs.device} is still attached"
        time.sleep(0.05)
    header = subprocess.run(["dumpe2fs", "-h", str(dirty)], capture_output=True, text=True)
    assert "needs_recovery" in header.stdout, "the copy is of a mounted volume"
    attach = ["losetup", "--find", "--show", "--read-only", str(dirty)]
    device = Path(subprocess.run(attach, check=True, capture_output=True, text=True).stdout.strip())
    fleet.loops.append(device)  # detached when the fleet closes
    return device, dirty


# On web1: what duplicity alone does not keep, beside write_tree's files.
EXTRAS = r"""
import os, struct
ANY = 0xFFFFFFFF
os.chdir("/opt/app")
with open("linked", "wb") as f:
    f.write(b"one inode, two names\n")
os.link("linked", "sub-link")
with open("tagged", "wb") as f:
    f.write(b"with attributes\n")
os.setxattr("tagged", "user.origin", b"web1")
entries = ((1, 6, ANY), (2, 4, 4242), (4, 4, ANY), (0x10, 4, ANY), (0x20, 0, ANY))
acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
os.setxattr("tagged", "system.posix_acl_access", acl)
with open("ping", "wb") as f:
    f.write(b"pretend binary\n")
os.chmod("ping", 0o755)
CAPABILITY = "0100000200040000000000000000000000000000"  # cap_net_bind_service+ep
os.setxattr("ping", "security.capability", bytes.fromhex(CAPABILITY))
with open("disk.img", "wb") as f:
    f.truncate(8 << 20)
    f.seek(4 << 20)
    f.write(b"middle")
os.chown("tagged", 4242, 4343)
"""
# Inside a host, in argv[1]: whether argv[2] and [3] are one inode, the xattrs of argv[4] and
# of ping, the allocated bytes of argv[5].
FACTS = r"""
import json, os, sys
os.chdir(sys.argv[1])
print(json.dumps([os.stat(sys.argv[2]).st_ino == os.stat(sys.argv[3]).st_ino,
                  {k: os.getxattr(sys.argv[4], k).hex() for k in sorted(os.listxattr(sys.argv[4]))},
                  {k: os.getxattr("ping", k).hex() for k in sorted(os.listxattr("ping"))},
                  os.stat(sys.argv[5]).st_blocks * 512]))
"""


def facts(host: Host, root: str) -> list[object]:
    argv = ["python3", "-c", FACTS, root, "linked", "sub-link", "tagged", "disk.img"]
    return json.loads(host.run(argv).stdout)


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        yield fleet


@dataclass(frozen=True)
class World:
    """bs with web1 backed up once and copied offsite to `endpoint` (moto, on host cloud)."""

    bs: Host
    web1: Host
    endpoint: str
    set_time: str


@pytest.fixture(scope="module")
def world(fleet: Fleet) -> Iterator[World]:
    bs = backup_server(fleet)
    web1 = tenant(fleet, bs, "web1", "/opt/app")
    cloud = fleet.add_host("cloud", duplicity=False)
    server = ThreadedMotoServer(ip_address=cloud.address, port=0, verbose=False)
    cloud.call(server.start)
    endpoint = f"http://{cloud.address}:{server._server.server_port}"
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        cloud.call(lambda: s3.create_bucket(Bucket=BUCKET))
        credentials = bs.path(CREDENTIALS)
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.write_text("aws_access_key_id = test\naws_secret_access_key = test\n")
        credentials.chmod(0o600)
        target = {"type": "s3", "endpoint_url": endpoint, "region": "us-east-1",
                  "bucket": BUCKET, "credentials_file": CREDENTIALS}  # fmt: skip
        inventory = bs.path("/etc/duplicity/dupstack.yaml")
        inventory.write_text(inventory.read_text() + "offsite:\n  targets:\n    copy: "
                             + json.dumps(target) + "\n")  # fmt: skip
        write_tree(web1.path("/opt/app"))
        web1.run(["python3", "-c", EXTRAS])
        ok(dupctl(bs, "backup", "web1"))
        ok(dupctl(bs, "offsite", "push", "web1"))  # the escrow with it
        found = json.loads(ok(dupctl(bs, "sets", "web1", "--json")))
        [set_time] = [entry["time"] for chain in found["chains"] for entry in chain["sets"]]
        yield World(bs, web1, endpoint, set_time)
    finally:
        cloud.call(server.stop)


def test_the_documented_procedure_restores_a_host_byte_for_byte(fleet: Fleet, world: World) -> None:
    bs, web1, set_time = world.bs, world.web1, world.set_time
    volume, image = attach_dirty_copy(bs, fleet)  # the server died; its volume elsewhere
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    rescue = fleet.add_host("rescue", duplicity=False)  # nothing of dupstack, no duplicity
    for tool in ("dupctl", "duplicity"):
        assert rescue.run(["sh", "-c", f"command -v {tool}"], check=False).returncode != 0
    assert not rescue.path("/etc/duplicity").exists()
    refused = rescue.run(["mount", "-o", "ro", str(volume), "/mnt"], check=False)
    assert refused.returncode != 0, "a dirty volume refuses a plain read-only mount"
    script = procedure("web1", str(volume))
    assert PASSCODE not in script and "--passphrase " not in script
    offline = f"export PIP_NO_INDEX=1 PIP_FIND_LINKS={shlex.quote(str(WHEELHOUSE))}\n"

    done = rescue.run(
        ["bash", "-euo", "pipefail", "-c", offline + script], input=f"{PASSCODE}\n", check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Chain start time" in done.stdout  # collection-status listed the sets
    assert set_time in done.stdout.splitlines()  # the set's time, as --time takes it
    restored = "/root/restored-web1/opt/app"
    assert tree(rescue.path(restored)) == tree(web1.path("/opt/app"))  # numeric owners too
    assert facts(rescue, restored) == facts(web1, "/opt/app")  # links, xattrs, ACL, capability
    assert facts(rescue, restored)[3] < 1 << 20  # the sparse file's holes punched back
    assert not rescue.path("/root/dupstack-recovery").exists()  # secrets are gone
    assert rescue.run(["pgrep", "-f", "dupstack-recovery/gnupg"], check=False).stdout == ""
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before  # never written


def test_the_readme_beside_the_escrow_gives_the_procedures_host_commands(tmp_path: Path) -> None:
    """What an operator finds on the volume (README.txt beside the escrow) restores a host
    with the procedure's own commands, and derives the passphrase that dupctl uses."""
    readme = README_TEXT.format(fingerprint="0" * 40)
    assert "docs/disaster-recovery.md" in readme
    assert "tar -xf /root/escrow.tar -C /root" in readme and "WORK=/root H=web1" in readme
    recipe = [line for line in commands(readme) if "$H" in line]
    assert len(recipe) == 3  # derive the passphrase, list the sets, restore
    assert [line for line in recipe if line not in commands(procedure("web1", "/dev/vdb"))] == []
    (tmp_path / "dupstack-keys").mkdir()
    (tmp_path / "dupstack-keys" / "passphrase").write_text("the stack secret\n")
    derive = f'WORK={tmp_path} H=web1; {recipe[0]}; echo "$PASSPHRASE"'
    done = subprocess.run(["bash", "-c", derive], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == host_passphrase(b"the stack secret\n", "web1")


def test_the_offsite_procedure_restores_a_host_from_the_bucket_alone(
    fleet: Fleet, world: World
) -> None:
    rescue = fleet.add_host("rescue-offsite", duplicity=False)  # no volume, no dupstack
    script = block(1, H="web1", BUCKET=BUCKET, PREFIX="dupstack", ENDPOINT=world.endpoint,
                   REGION="us-east-1")  # fmt: skip
    assert PASSCODE not in script
    offline = f"export PIP_NO_INDEX=1 PIP_FIND_LINKS={shlex.quote(str(WHEELHOUSE))}\n"

    done = rescue.run(["bash", "-euo", "pipefail", "-c", offline + script],
                      input=f"test\ntest\n{PASSCODE}\n", check=False)  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Chain start time" in done.stdout
    restored = "/root/restored-web1/opt/app"
    assert tree(rescue.path(restored)) == tree(world.web1.path("/opt/app"))
    assert facts(rescue, restored) == facts(world.web1, "/opt/app")
    assert not rescue.path("/root/dupstack-recovery").exists()
