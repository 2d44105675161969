"""Finding, probing and mounting the volume: the pure parts, on fake /dev and /sys trees."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from agent.errors import DeviceNotFound
from agent.volume.device import is_other_volume, volume_candidates, wait_for_volume
from agent.volume.filesystem import mounted_device_number
from agent.volume.fstab import MARKER, with_volume_entry
from agent.volume.probe import Probe, parse_blkid_export

VOLUME_ID = "0f5e4d7c-1234-4abc-9def-0123456789ab"


def test_the_volume_is_looked_for_by_its_virtio_serial_then_as_vdb() -> None:
    assert volume_candidates(VOLUME_ID) == (
        Path("/dev/disk/by-id/virtio-0f5e4d7c-1234-4abc-9"),
        Path("/dev/vdb"),
    )
    assert volume_candidates(None) == (Path("/dev/vdb"),)


def test_vdb_is_skipped_when_sysfs_says_it_is_another_disk(tmp_path: Path) -> None:
    serial = tmp_path / "block" / "vdb" / "serial"
    serial.parent.mkdir(parents=True)
    serial.write_text("ephemeral-disk-0001\n")
    assert is_other_volume(Path("/dev/vdb"), VOLUME_ID, sys_dir=tmp_path)
    serial.write_text(VOLUME_ID[:20])
    assert not is_other_volume(Path("/dev/vdb"), VOLUME_ID, sys_dir=tmp_path)
    serial.write_text("")  # no serial: nothing says it is another disk
    assert not is_other_volume(Path("/dev/vdb"), VOLUME_ID, sys_dir=tmp_path)


def test_waiting_ends_as_soon_as_the_by_id_link_appears(tmp_path: Path) -> None:
    link = tmp_path / "virtio-0f5e4d7c-1234-4abc-9"
    link.touch()
    assert wait_for_volume((link, tmp_path / "vdb"), VOLUME_ID, timeout=5) == link


def test_a_device_that_never_appears_is_named_in_the_error(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceNotFound) as error:
        wait_for_volume((tmp_path / "by-id", tmp_path / "vdb"), VOLUME_ID, timeout=0.3, poll=0.1)
    assert 0.3 <= time.monotonic() - started < 2
    assert str(tmp_path / "by-id") in error.value.message
    assert "did not appear within 0.3 s" in error.value.message


@pytest.mark.parametrize(
    ("export", "blank", "ours", "phrase"),
    [
        ("", True, False, ""),
        ("DEVNAME=/dev/vdb\nUUID=u\nTYPE=ext4\nLABEL=dupstack\n", False, True, ""),
        ("DEVNAME=/dev/vdb\nUUID=u\nTYPE=ext4\n", False, False, "a filesystem (ext4, no label)"),
        ("TYPE=xfs\nLABEL=data\n", False, False, 'a filesystem (xfs, label "data")'),
        ("DEVNAME=/dev/vdb\nPTTYPE=gpt\n", False, False, "a partition table (gpt)"),
        ("TYPE=crypto_LUKS\n", False, False, "a filesystem (crypto_LUKS, no label)"),
    ],
)  # fmt: skip
def test_only_a_volume_with_no_signature_at_all_is_blank(
    export: str, blank: bool, ours: bool, phrase: str
) -> None:
    found = Probe(parse_blkid_export(export))
    assert (found.blank, found.is_dupstack) == (blank, ours)
    if phrase:
        assert found.describe() == phrase


def test_several_signatures_are_never_blank() -> None:
    assert not Probe({}, ambivalent=True).blank


def test_the_fstab_entry_is_by_uuid_nofail_and_written_once() -> None:
    mount_point = Path("/mnt/vdb")
    original = "UUID=root / ext4 defaults 0 1\n/dev/vdb /mnt/vdb auto defaults 0 2\n"

    first = with_volume_entry(original, "abcd", mount_point)

    assert first.splitlines() == [
        "UUID=root / ext4 defaults 0 1",
        MARKER,
        "UUID=abcd /mnt/vdb ext4 defaults,nofail,x-systemd.device-timeout=30s 0 2",
    ]
    assert with_volume_entry(first, "abcd", mount_point) == first
    assert "UUID=efgh" in with_volume_entry(first, "efgh", mount_point)
    assert with_volume_entry("", "abcd", mount_point).startswith(MARKER)


def test_what_is_mounted_is_read_from_mountinfo(tmp_path: Path) -> None:
    point = tmp_path / "mnt with space"
    point.mkdir()
    escaped = str(point).replace(" ", "\\040")
    mountinfo = (
        f"22 1 8:1 / / rw - ext4 /dev/vda rw\n"
        f"90 22 7:3 / {escaped} rw,relatime shared:1 - ext4 /dev/loop3 rw\n"
    )
    assert mounted_device_number(point, mountinfo) == os.makedev(7, 3)
    assert mounted_device_number(tmp_path, mountinfo) is None
