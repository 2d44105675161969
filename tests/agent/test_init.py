"""`dupctl init` on a real loop-device volume, real mkfs/mount, real GnuPG and duplicity."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import struct
import subprocess
import time
from pathlib import Path

from agent.errors import DeviceNotFound, KeyMismatch, PasscodeError, VolumeRefused
from tests.agent.dupctl_server import PASSCODE, LoopVolume, Server


def snapshot(top: Path) -> dict[str, tuple[int, bytes]]:
    """Every file under `top`: (mode, content digest), to prove nothing changed."""
    return {
        str(path.relative_to(top)): (
            path.stat().st_mode,
            hashlib.sha256(path.read_bytes()).digest(),
        )
        for path in sorted(top.rglob("*"))
        if path.is_file()
    }


def backup_with_dup_vars(server: Server, source: Path, target: str, keys: bool) -> None:
    """A backup as the old guide does it: source dup_vars.sh, then raw duplicity."""
    key_options = '--encrypt-key "$ENCRYPT_KEY" --sign-key "$SIGN_KEY"' if keys else ""
    done = server.run(
        ["bash", "-c", f". {server.etc}/dup_vars.sh && duplicity {key_options} {source} {target}"]
    )
    assert done.returncode == 0, done.stdout + done.stderr


def restore_with_dup_vars(server: Server, target: str, destination: Path) -> None:
    done = server.run(
        ["bash", "-c", f". {server.etc}/dup_vars.sh && duplicity restore {target} {destination}"]
    )
    assert done.returncode == 0, done.stdout + done.stderr


def server_duplicity(server: Server, args: list[str]) -> list[str]:
    """Stock duplicity, run where the volume is mounted."""
    return server.command(["duplicity", *args])


def test_first_init_formats_mounts_and_sets_up_the_keys(initialised: Server) -> None:
    tags = initialised.volume.blkid()
    assert (tags["TYPE"], tags["LABEL"]) == ("ext4", "dupstack")
    assert initialised.is_mounted()
    fstab = (initialised.root / "etc" / "fstab").read_text()
    assert f"UUID={tags['UUID']} {initialised.mount_point} ext4 " in fstab
    assert "nofail" in fstab
    assert (initialised.volume_dir / ".dupstack" / "escrow.tar.gpg").is_file()
    assert (initialised.root / "etc" / "cron.d" / "dupstack").is_file()
    assert not (initialised.root / "run" / "dupstack" / "passcode").exists()  # shredded


def test_second_init_changes_nothing(initialised: Server) -> None:
    uuid, fingerprint = initialised.volume.blkid()["UUID"], initialised.fingerprint()
    (initialised.volume_dir / "data.txt").write_text("precious")
    before = snapshot(initialised.root)

    done = initialised.init("--mode", "create")  # no passcode any more: none is needed

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "init complete: nothing changed"
    assert initialised.volume.blkid()["UUID"] == uuid
    assert initialised.fingerprint() == fingerprint
    assert snapshot(initialised.root) == before
    assert (initialised.volume_dir / "data.txt").read_text() == "precious"


def test_init_at_the_next_boot_only_mounts_the_volume(initialised: Server) -> None:
    """As the per-boot hook runs it: no options, the mode comes from cloud-init's stack.env."""
    stack_env = initialised.root / "etc" / "dupstack" / "stack.env"
    stack_env.write_text("DUPSTACK_VOLUME_ID=__DUPSTACK_VOLUME_ID__\nDUPSTACK_MODE=create\n")
    initialised.reboot()
    assert not initialised.is_mounted()

    done = initialised.init()

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "init complete: 1 change(s): mount"
    assert initialised.is_mounted()


def test_restore_template_path_brings_the_keys_back_from_the_volume(
    initialised: Server, make_server, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_text("backed up before the server was lost")
    target = f"file://{initialised.mount_point}/local-test"
    backup_with_dup_vars(initialised, source, target, keys=True)
    fingerprint = initialised.fingerprint()
    initialised.shutdown()  # the old server is gone; the volume survives

    new = make_server("new-server")  # fresh /etc: nothing in /etc/duplicity
    new.write_passcode()
    done = new.init("--mode", "restore")

    assert done.returncode == 0, done.stderr
    assert "(restored from the escrow)" in done.stdout
    assert "formatted" not in done.stdout
    assert new.fingerprint() == fingerprint
    restore_with_dup_vars(new, target.replace(str(initialised.root), str(new.root)), tmp_path / "r")
    assert (tmp_path / "r" / "file.txt").read_text() == "backed up before the server was lost"


def test_wrong_passcode_is_a_clear_error_and_changes_nothing(
    initialised: Server, make_server
) -> None:
    volume_before = snapshot(initialised.volume_dir)
    initialised.shutdown()
    new = make_server("new-server")
    new.write_passcode("not the passcode at all")

    done = new.init("--mode", "restore")

    assert done.returncode == PasscodeError.exit_code
    assert done.stderr.splitlines()[0].startswith("dupctl: error: wrong passcode for the key")
    assert "Traceback" not in done.stderr
    assert not new.etc.exists()
    assert not (new.root / "etc" / "fstab").exists()
    assert not (new.root / "etc" / "cron.d").exists()
    assert not new.is_mounted()  # init unmounted what it had mounted
    new.run(["mount", str(new.volume.device), str(new.mount_point)])
    assert snapshot(new.volume_dir) == volume_before


def test_after_a_wrong_passcode_the_operator_types_the_right_one(
    initialised: Server, make_server
) -> None:
    fingerprint = initialised.fingerprint()
    initialised.shutdown()
    new = make_server("new-server")
    new.write_passcode("not the passcode at all")
    assert new.init("--mode", "restore").returncode == PasscodeError.exit_code

    done = new.init("--mode", "restore", "--passcode-file", "-", input=PASSCODE + "\n")

    assert done.returncode == 0, done.stderr
    assert new.fingerprint() == fingerprint


def test_missing_device_is_a_clear_error_after_the_bounded_wait(server: Server) -> None:
    server.write_passcode()
    started = time.monotonic()

    done = server.init("--mode", "create", "--device", "/dev/dupstack-missing", "--wait", "1")

    elapsed = time.monotonic() - started
    assert done.returncode == DeviceNotFound.exit_code
    assert "/dev/dupstack-missing did not appear within 1 s" in done.stderr
    assert 1 <= elapsed < 10
    assert not server.etc.exists()


def _foreign_ext4_with_data(server: Server) -> None:
    subprocess.run(["mkfs.ext4", "-q", "-L", "data", str(server.volume.device)], check=True)
    for step in (
        ["mount", str(server.volume.device), "/mnt"],
        ["sh", "-c", 'echo "someone else\'s data" > /mnt/important.txt'],
        ["umount", "/mnt"],
    ):
        assert server.run(step).returncode == 0, step


def _dos_partition_table(volume: LoopVolume) -> None:
    with volume.device.open("r+b") as disk:
        disk.seek(446)
        disk.write(bytes([0, 0, 0, 0, 0x83, 0, 0, 0]) + struct.pack("<II", 2048, 65536))
        disk.seek(510)
        disk.write(b"\x55\xaa")


def test_a_foreign_filesystem_with_data_is_never_formatted(server: Server) -> None:
    _foreign_ext4_with_data(server)
    uuid = server.volume.blkid()["UUID"]
    server.write_passcode()

    done = server.init("--mode", "create")

    assert done.returncode == VolumeRefused.exit_code
    assert 'holds a filesystem (ext4, label "data"), which dupstack did not create' in done.stderr
    assert server.volume.blkid()["UUID"] == uuid
    server.run(["mount", "-o", "ro", str(server.volume.device), "/mnt"])
    assert server.path("/mnt/important.txt").read_text() == "someone else's data\n"
    assert not server.etc.exists()


def test_a_partitioned_disk_is_never_formatted(server: Server) -> None:
    _dos_partition_table(server.volume)
    server.write_passcode()

    done = server.init("--mode", "create")

    assert done.returncode == VolumeRefused.exit_code
    assert "holds a partition table (dos)" in done.stderr
    assert server.volume.blkid()["PTTYPE"] == "dos"


def test_restore_mode_never_formats_a_blank_volume(server: Server) -> None:
    server.write_passcode()

    done = server.init("--mode", "restore")

    assert done.returncode == VolumeRefused.exit_code
    assert (
        f"volume {server.volume.device} has no filesystem; restore mode never formats; "
        "did you pick the right volume?"
    ) in done.stderr
    assert server.volume.blkid() == {}


def test_restore_mode_needs_the_escrow(server: Server) -> None:
    subprocess.run(["mkfs.ext4", "-q", "-L", "dupstack", str(server.volume.device)], check=True)
    server.write_passcode()

    done = server.init("--mode", "restore")

    assert done.returncode == VolumeRefused.exit_code
    assert "volume has no key escrow" in done.stderr
    assert not server.etc.exists()


def test_keys_of_another_volume_are_refused(initialised: Server) -> None:
    metadata = initialised.volume_dir / ".dupstack" / "escrow.json"
    metadata.write_text(json.dumps({"format": 1, "fingerprint": "0" * 40}))
    before = snapshot(initialised.root)

    done = initialised.init("--mode", "create")

    assert done.returncode == KeyMismatch.exit_code
    assert "are not the ones escrowed on this volume" in done.stderr
    assert snapshot(initialised.root) == before


def test_everything_under_etc_duplicity_is_root_only(initialised: Server) -> None:
    entries = [initialised.etc, *initialised.etc.rglob("*")]
    assert any(path.name == "passphrase" for path in entries)
    for path in entries:
        info = path.lstat()
        expected = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (expected, 0, 0), path
        assert stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode), path
    escrow_dir = initialised.volume_dir / ".dupstack"
    assert stat.S_IMODE(escrow_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((escrow_dir / "escrow.tar.gpg").stat().st_mode) == 0o600


def test_no_secret_is_in_any_argv_environment_log_or_file(server: Server, tmp_path: Path) -> None:
    """Scans every process's argv and environment while init runs (with --debug)."""
    server.write_passcode()
    seen: set[bytes] = set()
    with (tmp_path / "out").open("w+b") as out, (tmp_path / "err").open("w+b") as err:
        process = subprocess.Popen(
            server.command(server.init_argv("--mode", "create", "--debug")),
            stdout=out,
            stderr=err,
            env=server.env,
        )
        while process.poll() is None:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                for name in ("cmdline", "environ"):
                    with contextlib.suppress(OSError):
                        seen.add(Path(f"/proc/{pid}/{name}").read_bytes())
        logs = out.read() if out.seek(0) == 0 else b""
        logs += err.read() if err.seek(0) == 0 else b""

    assert process.returncode == 0, logs
    assert any(b"gpg" in seen_argv for seen_argv in seen)  # the scan did see gpg at work
    assert b"dupctl: DEBUG: run: " in logs  # the debug log was on
    passphrase = (server.etc / "passphrase").read_text().strip().encode()
    for secret in (PASSCODE.encode(), passphrase):
        assert not [seen_argv for seen_argv in seen if secret in seen_argv]
        assert secret not in logs
    written = [*server.root.rglob("*"), *server.volume_dir.rglob("*")]
    leaked = [p for p in written if p.is_file() and PASSCODE.encode() in p.read_bytes()]
    assert not leaked


def test_the_escrow_recovers_by_hand_with_stock_gpg_tar_and_duplicity(
    initialised: Server, tmp_path: Path
) -> None:
    """The README's recipe, without dupstack: the volume and the passcode are enough."""
    source = tmp_path / "source"
    source.mkdir()
    (source / "file.txt").write_text("recover me by hand")
    target = f"file://{initialised.mount_point}/local-etc"
    backup_with_dup_vars(initialised, source, target, keys=True)
    escrow = initialised.volume_dir / ".dupstack" / "escrow.tar.gpg"
    readme = (initialised.volume_dir / ".dupstack" / "README.txt").read_text()
    assert initialised.fingerprint() in readme
    home, work = tmp_path / "gnupg", tmp_path / "work"
    home.mkdir(mode=0o700)
    work.mkdir()
    gpg = ["gpg", "--homedir", str(home), "--batch"]
    try:
        tar = subprocess.run(
            [*gpg, "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--decrypt", escrow],
            input=PASSCODE.encode() + b"\n",
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", work], input=tar, check=True)
        keys = work / "dupstack-keys"
        subprocess.run(
            [*gpg, "--pinentry-mode", "loopback", "--passphrase-file", keys / "passphrase",
             "--import", keys / "secret-key.asc"],
            check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run([*gpg, "--import-ownertrust", keys / "ownertrust.txt"], check=True)
        env = {
            **initialised.env,
            "GNUPGHOME": str(home),
            "PASSPHRASE": (keys / "passphrase").read_text().strip(),
        }
        done = subprocess.run(
            server_duplicity(initialised, ["restore", target, str(tmp_path / "restored")]),
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=False)
    assert (tmp_path / "restored" / "file.txt").read_text() == "recover me by hand"


def test_dup_vars_lets_the_guides_raw_commands_work(initialised: Server, tmp_path: Path) -> None:
    source = tmp_path / "etc-copy"
    source.mkdir()
    (source / "hosts").write_text("127.0.0.1 localhost\n")
    target = f"file://{initialised.mount_point}/local-etc"

    backup_with_dup_vars(initialised, source, target, keys=False)  # `duplicity /etc file://...`
    restore_with_dup_vars(initialised, target, tmp_path / "restored")

    assert (tmp_path / "restored" / "hosts").read_text() == "127.0.0.1 localhost\n"


def test_the_default_schedule_is_written_once_and_then_kept(initialised: Server) -> None:
    cron = initialised.root / "etc" / "cron.d" / "dupstack"
    lines = [line for line in cron.read_text().splitlines() if line and not line[0] == "#"]
    jobs = [line for line in lines if line[0].isdigit()]
    assert any(" * * 0 " in job and " full " in job for job in jobs)  # weekly full
    assert any(" * * 1-6 " in job and " incremental " in job for job in jobs)  # daily incr.
    assert all(f"mountpoint -q {initialised.mount_point} &&" in job for job in jobs)
    assert all(job.split()[5] == "root" for job in jobs)
    assert "%" not in cron.read_text()

    cron.write_text("# the operator's own schedule\n")
    assert initialised.init("--mode", "create").returncode == 0
    assert cron.read_text() == "# the operator's own schedule\n"


def test_init_schedules_the_tenant_hosts_and_a_broken_inventory_never_stops_it(
    initialised: Server,
) -> None:
    hosts_cron = initialised.root / "etc" / "cron.d" / "dupstack-hosts"
    text = hosts_cron.read_text()
    assert "dupctl schedule apply" in text and "dupctl backup --missed" in text  # no hosts yet
    inventory = initialised.etc / "dupstack.yaml"
    inventory.write_text("server: {address: bs}\nhosts:\n  web1: {address: 10.0.0.5}\n")
    done = initialised.init("--mode", "create")
    assert done.returncode == 0, done.stderr
    assert "dupctl backup web1 " in hosts_cron.read_text()
    before = hosts_cron.read_text()
    inventory.write_text("server: {address: bs}\nhosts:\n  web1: {adress: 10.0.0.5}\n")
    done = initialised.init("--mode", "create")
    assert done.returncode == 0, done.stderr
    assert "kept: the inventory is invalid" in done.stdout
    assert hosts_cron.read_text() == before
