"""Find the backup volume's block device, waiting (bounded) for Nova to attach it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from agent.errors import DeviceNotFound

logger = logging.getLogger(__name__)

# Nova passes the first 20 characters of the Cinder volume ID as the virtio serial.
SERIAL_LENGTH = 20
FALLBACK_DEVICE = "vdb"


def volume_candidates(volume_id: str | None, dev_dir: Path = Path("/dev")) -> tuple[Path, ...]:
    """The paths the volume may appear at, best first: its by-id link, then /dev/vdb."""
    by_id = (
        (dev_dir / "disk" / "by-id" / f"virtio-{volume_id[:SERIAL_LENGTH]}",) if volume_id else ()
    )
    return (*by_id, dev_dir / FALLBACK_DEVICE)


def is_other_volume(device: Path, volume_id: str | None, sys_dir: Path = Path("/sys")) -> bool:
    """True if sysfs gives `device` a serial that is not the volume's (e.g. an ephemeral disk)."""
    if not volume_id:
        return False
    serial_file = sys_dir / "block" / device.name / "serial"
    try:
        serial = serial_file.read_text().strip()
    except OSError:
        return False
    return bool(serial) and serial != volume_id[:SERIAL_LENGTH]


def wait_for_volume(
    candidates: tuple[Path, ...],
    volume_id: str | None,
    timeout: float,
    sys_dir: Path = Path("/sys"),
    poll: float = 0.5,
) -> Path:
    """The first candidate that exists and is not another volume; DeviceNotFound after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        for path in candidates:
            if path.exists() and not is_other_volume(path.resolve(), volume_id, sys_dir):
                return path
        if time.monotonic() >= deadline:
            break
        logger.debug("waiting for %s", ", ".join(map(str, candidates)))
        time.sleep(poll)
    names = " or ".join(str(path) for path in candidates)
    raise DeviceNotFound(
        f"volume device {names} did not appear within {timeout:g} s",
        hint="check that the Cinder volume is attached to this server, then rerun `dupctl init`",
    )
