"""`dupctl init`: bring the backup server up from its volume; idempotent, safe at every boot.

Steps: lock the metadata service; wait for the volume; format it only if blank (create mode);
mount it; generate the keys and escrow them on the volume, or restore them from the escrow;
fstab entry, dup_vars.sh, default schedule; shred the passcode file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent import execute
from agent.errors import (
    BlankVolumeInRestoreMode,
    ConfigError,
    EscrowMissing,
    ForeignFilesystem,
    KeyMismatch,
    MountPointBusy,
)
from agent.files import lock_down_tree, make_private_dir, write_atomic
from agent.keys import escrow, keyring
from agent.keys.escrow import KeyMaterial
from agent.passcode import consume_passcode_file, read_passcode
from agent.paths import ServerPaths
from agent.report import Report
from agent.schedule import crontab
from agent.server.dup_vars import dup_vars_script
from agent.server.metadata_lock import metadata_lock_rules, nft_apply_argv
from agent.server.schedule import default_crontab
from agent.volume import filesystem, fstab
from agent.volume.device import volume_candidates, wait_for_volume
from agent.volume.probe import probe


@dataclass(frozen=True)
class InitOptions:
    """What the command line and stack.env ask of init."""

    mode: str  # create: a blank volume is formatted; restore: never formats
    volume_id: str | None
    device: Path | None  # None: find it from the volume id
    wait: float  # seconds to wait for the device
    passcode_source: str  # a root-only file, or "-" for stdin


class Passcode:
    """The passcode, read on first use only (an unchanged server never needs it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._value: str | None = None

    def get(self) -> str:
        if self._value is None:
            self._value = read_passcode(self.source)
        return self._value


def run_init(paths: ServerPaths, options: InitOptions, say: Callable[[str], None]) -> Report:
    """Bring the server to its initialised state; returns what changed."""
    report = Report(say)
    say(f"dupctl init (mode {options.mode})")
    lock_metadata_service(paths, report)
    device = find_device(options, report)
    uuid = prepare_filesystem(device, options.mode, report)
    mounted_now = mount_volume(device, paths.mount_point, report)
    try:
        fingerprint = ensure_keys(paths, options.mode, Passcode(options.passcode_source), report)
    except BaseException:
        if mounted_now:  # leave the server as it was: a failed init changes nothing
            execute.run(filesystem.umount_argv(paths.mount_point))
        raise
    finally:
        if paths.gnupg_home.is_dir():
            keyring.stop_agent(paths.gnupg_home)
    write_fstab_entry(paths, uuid, report)
    changed = write_atomic(paths.dup_vars, dup_vars_script(paths, fingerprint))
    report.step("dup_vars", f"{paths.dup_vars}", changed)
    lock_down_tree(paths.etc_dir)
    write_default_schedule(paths, report)
    write_hosts_schedule(paths, report)
    if consume_passcode_file(options.passcode_source):
        report.step("passcode", f"{options.passcode_source} shredded", True)
    say(
        f"init complete: {len(report.changes)} change(s): {', '.join(report.changes)}"
        if report.changes
        else "init complete: nothing changed"
    )
    return report


def lock_metadata_service(paths: ServerPaths, report: Report) -> None:
    """First of all: non-root processes lose access to user_data (and the passcode in it)."""
    changed = write_atomic(paths.metadata_lock, metadata_lock_rules(), 0o644)
    execute.run(nft_apply_argv(paths.metadata_lock))
    report.step("metadata", "only root may reach the metadata service (nftables)", changed)


def find_device(options: InitOptions, report: Report) -> Path:
    candidates = (options.device,) if options.device else volume_candidates(options.volume_id)
    started = time.monotonic()
    device = wait_for_volume(candidates, options.volume_id, options.wait)
    report.step("volume", f"{device} (after {time.monotonic() - started:.1f} s)", False)
    return device


def prepare_filesystem(device: Path, mode: str, report: Report) -> str:
    """Format `device` only if blkid finds nothing on it (and never in restore mode); its UUID."""
    found = probe(device)
    if found.is_dupstack:
        report.step("filesystem", f"ext4 UUID={found.uuid} (kept)", False)
        return found.uuid
    if not found.blank:
        raise ForeignFilesystem(
            f"volume {device} holds {found.describe()}, which dupstack did not create; "
            "it is never formatted or used",
            hint="attach the dupstack backup volume or a blank one; this one is left untouched",
        )
    if mode == "restore":
        raise BlankVolumeInRestoreMode(
            f"volume {device} has no filesystem; restore mode never formats; "
            "did you pick the right volume?",
            hint="launch the restore template with the dupstack backup volume's ID",
        )
    execute.run(filesystem.mkfs_argv(device))
    formatted = probe(device)
    report.step("filesystem", f"formatted ext4 UUID={formatted.uuid}", True)
    return formatted.uuid


def mount_volume(device: Path, mount_point: Path, report: Report) -> bool:
    """Mount `device` at `mount_point` unless it is there already; True if mounted now."""
    current = filesystem.mounted_device_number(mount_point, filesystem.read_mountinfo())
    if current == os.stat(device).st_rdev:
        report.step("mount", f"{mount_point} (already mounted)", False)
        return False
    if current is not None:
        raise MountPointBusy(
            f"another filesystem is mounted at {mount_point}",
            hint=f"unmount it (umount {mount_point}), then rerun `dupctl init`",
        )
    mount_point.mkdir(parents=True, exist_ok=True)
    execute.run(filesystem.mount_argv(device, mount_point))
    report.step("mount", f"{device} on {mount_point}", True)
    return True


def ensure_keys(paths: ServerPaths, mode: str, passcode: Passcode, report: Report) -> str:
    """Keep, restore or generate the key material so that it matches the volume's escrow."""
    state_dir = paths.volume_state_dir
    local = local_fingerprint(paths)
    if local and escrow.has_escrow(state_dir):
        escrowed = escrow.escrow_fingerprint(state_dir)
        if escrowed is None:
            escrowed = escrow.open_escrow(state_dir, passcode.get()).fingerprint
        if escrowed != local:
            raise KeyMismatch(
                f"the keys in {paths.etc_dir} ({local}) are not the ones escrowed on this "
                f"volume ({escrowed})",
                hint=f"to use the volume's keys, move {paths.etc_dir} aside and rerun "
                "`dupctl init` with the volume's passcode",
            )
        report.step("keys", f"{local} (kept, matches the escrow)", False)
    elif local:
        passphrase = paths.passphrase_file.read_text().strip()
        secret = keyring.export_secret_key(paths.gnupg_home, local, passphrase)
        escrow.write_escrow(state_dir, KeyMaterial(local, secret, passphrase), passcode.get())
        report.step("keys", f"{local} (kept)", False)
        report.step("escrow", f"written to {state_dir / escrow.ESCROW}", True)
    elif escrow.has_escrow(state_dir):
        material = escrow.open_escrow(state_dir, passcode.get())
        install_keys(paths, material)
        report.step("keys", f"{material.fingerprint} (restored from the escrow)", True)
        local = material.fingerprint
    elif mode == "restore":
        raise EscrowMissing(
            f"volume has no key escrow ({state_dir / escrow.ESCROW}); restore mode needs it",
            hint="launch the restore template with the dupstack backup volume's ID",
        )
    else:
        local = generate_keys(paths, passcode.get(), report)
    return local


def local_fingerprint(paths: ServerPaths) -> str | None:
    """The fingerprint of this server's key material, None if there is none."""
    keys = keyring.secret_fingerprints(paths.gnupg_home)
    has_passphrase = paths.passphrase_file.exists()
    if not keys and not has_passphrase:
        return None
    if len(keys) == 1 and has_passphrase:
        return keys[0]
    raise KeyMismatch(
        f"incomplete key material in {paths.etc_dir}: {len(keys)} secret key(s), "
        f"passphrase file {'present' if has_passphrase else 'missing'}",
        hint=f"move {paths.etc_dir} aside and rerun `dupctl init` with the passcode: "
        "the keys come back from the volume's escrow",
    )


def generate_keys(paths: ServerPaths, passcode: str, report: Report) -> str:
    """New key material, escrowed on the volume before it is installed."""
    with staging_dir(paths) as staging:
        passphrase = secrets.token_urlsafe(32)
        fingerprint = keyring.generate_key(staging / "gnupg", passphrase)
        secret = keyring.export_secret_key(staging / "gnupg", fingerprint, passphrase)
        material = KeyMaterial(fingerprint, secret, passphrase)
        escrow.write_escrow(paths.volume_state_dir, material, passcode)
        report.step("keys", f"{fingerprint} (generated)", True)
        report.step("escrow", f"written to {paths.volume_state_dir / escrow.ESCROW}", True)
        commit_staging(staging, paths, material)
    return fingerprint


def install_keys(paths: ServerPaths, material: KeyMaterial) -> None:
    """Install key material from the escrow as this server's keys."""
    with staging_dir(paths) as staging:
        imported = keyring.import_secret_key(
            staging / "gnupg", material.secret_key, material.passphrase
        )
        if material.fingerprint not in imported:
            raise KeyMismatch(f"the escrow's key is not {material.fingerprint}: {imported}")
        commit_staging(staging, paths, material)


@contextlib.contextmanager
def staging_dir(paths: ServerPaths) -> Iterator[Path]:
    """A private folder next to the keys' home, removed (with its gpg-agent) unless committed."""
    paths.etc_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{paths.etc_dir.name}-", dir=paths.etc_dir.parent))
    try:
        yield staging
    finally:
        if staging.exists():
            if (staging / "gnupg").is_dir():
                keyring.stop_agent(staging / "gnupg")
            shutil.rmtree(staging, ignore_errors=True)


def commit_staging(staging: Path, paths: ServerPaths, material: KeyMaterial) -> None:
    """Make the staged key material this server's, in one rename."""
    write_atomic(staging / paths.passphrase_file.name, material.passphrase + "\n")
    keyring.stop_agent(staging / "gnupg")
    lock_down_tree(staging)
    if paths.etc_dir.exists():
        # It holds no key material (checked before): keep whatever the operator put there.
        if any(paths.etc_dir.iterdir()):
            aside = f"{paths.etc_dir.name}.before-dupstack-{time.strftime('%Y%m%d%H%M%S')}"
            paths.etc_dir.rename(paths.etc_dir.with_name(aside))
        else:
            paths.etc_dir.rmdir()
    staging.rename(paths.etc_dir)
    make_private_dir(paths.etc_dir)


def write_fstab_entry(paths: ServerPaths, uuid: str, report: Report) -> None:
    current = paths.fstab.read_text() if paths.fstab.exists() else ""
    changed = write_atomic(
        paths.fstab, fstab.with_volume_entry(current, uuid, paths.mount_point), 0o644
    )
    report.step("fstab", fstab.fstab_entry(uuid, paths.mount_point), changed)


def write_default_schedule(paths: ServerPaths, report: Report) -> None:
    """The default schedule, written once: the operator's edits are kept."""
    if paths.cron_file.exists():
        report.step("schedule", f"{paths.cron_file} (kept)", False)
        return
    write_atomic(paths.cron_file, default_crontab(paths), 0o644)
    report.step("schedule", f"{paths.cron_file} (weekly full, daily incremental)", True)


def write_hosts_schedule(paths: ServerPaths, report: Report) -> None:
    """The tenant hosts' crontab from the inventory; a broken inventory never stops a boot."""
    try:
        changed = crontab.refresh(paths)
    except ConfigError as error:
        first = error.message.splitlines()[0]
        report.step(
            "hosts", f"{paths.hosts_cron_file} kept: the inventory is invalid: {first}", False
        )
        return
    report.step("hosts", f"{paths.hosts_cron_file} (from the inventory)", changed)
