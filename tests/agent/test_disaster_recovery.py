"""docs/disaster-recovery.md works: its commands, run as written on a machine that never had
dupstack, recover a host's files from nothing but the volume and the passcode."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def procedure(host: str, volume: str) -> str:
    """The doc's one `bash` block, with its host and volume lines set."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", DOC.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the procedure is the doc's only bash block"
    script = blocks[0]
    for name, value in (("H", host), ("VOLUME", volume)):
        line = re.compile(rf"^{name}=\S+", re.MULTILINE)
        script, count = line.subn(f"{name}={shlex.quote(value)}", script, count=1)
        assert count == 1, f"the procedure sets {name} on a line of its own"
    return script


def commands(text: str) -> list[str]:
    """Shell commands, one per line: continued lines joined, blanks squeezed."""
    return [" ".join(line.split()) for line in text.replace("\\\n", " ").splitlines()]


def attach_after(bs: Host, fleet: Fleet) -> Path:
    """Kill `bs`, wait until its volume's loop device is gone, and attach the volume's image
    again (read-only) as a new device, for another host to mount."""
    assert bs.device is not None
    bs.kill()
    deadline = time.monotonic() + 10
    while Path(f"/sys/block/{bs.device.name}/loop").exists():  # ext4 let go of it
        assert time.monotonic() < deadline, f"{bs.device} is still attached"
        time.sleep(0.05)
    image = str(fleet.dir / "vdb.img")
    attach = ["losetup", "--find", "--show", "--read-only", image]
    device = Path(subprocess.run(attach, check=True, capture_output=True, text=True).stdout.strip())
    fleet.loops.append(device)  # detached when the fleet closes
    return device


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with Fleet() as fleet:
        yield fleet


def test_the_documented_procedure_restores_a_host_byte_for_byte(fleet: Fleet) -> None:
    bs = backup_server(fleet)
    web1 = tenant(fleet, bs, "web1", "/opt/app")
    write_tree(web1.path("/opt/app"))
    ok(dupctl(bs, "backup", "web1"))
    volume = attach_after(bs, fleet)  # the server is gone; its volume is attached elsewhere
    rescue = fleet.add_host("rescue")  # stock duplicity on its PATH, nothing of dupstack
    assert rescue.run(["sh", "-c", "command -v dupctl"], check=False).returncode != 0
    assert not rescue.path("/etc/duplicity").exists()
    script = procedure("web1", str(volume))
    assert PASSCODE not in script and "--passphrase " not in script

    done = rescue.run(
        ["bash", "-euo", "pipefail", "-c", script], input=f"{PASSCODE}\n", check=False
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Chain start time" in done.stdout  # collection-status listed the sets
    assert tree(rescue.path("/root/restored-web1/opt/app")) == tree(web1.path("/opt/app"))
    assert not rescue.path("/root/dupstack-recovery").exists()  # secrets are gone
    assert rescue.run(["pgrep", "-f", "dupstack-recovery/gnupg"], check=False).stdout == ""


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
