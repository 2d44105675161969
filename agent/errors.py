"""Typed errors of dupctl: each carries one clear line, a hint, and its exit code."""

from __future__ import annotations


class DupstackError(Exception):
    """An error the operator can act on; `hint` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(DupstackError):
    """Bad command-line input or settings."""

    exit_code = 2


class DeviceNotFound(DupstackError):
    """The volume's block device did not appear within the wait."""

    exit_code = 3


class VolumeRefused(DupstackError):
    """The volume is not one dupctl may format or use as it is."""

    exit_code = 4


class ForeignFilesystem(VolumeRefused):
    """The volume holds data that dupstack did not create: never formatted, never used."""


class BlankVolumeInRestoreMode(VolumeRefused):
    """Restore mode found a volume without a filesystem (and never formats)."""


class EscrowMissing(VolumeRefused):
    """Restore mode found a dupstack volume without a key escrow."""


class MountPointBusy(VolumeRefused):
    """Something else is mounted where the volume belongs."""


class PasscodeError(DupstackError):
    """The passcode is missing, wrong, or stored unsafely."""

    exit_code = 5


class KeyMismatch(DupstackError):
    """This server's keys and the volume's escrow belong to different keys."""

    exit_code = 6


class CommandFailed(DupstackError):
    """A system command (mkfs, mount, gpg, nft...) failed."""

    exit_code = 7


class CacheDamaged(CommandFailed):
    """duplicity's cache of a host's manifests and signatures disagrees with its sets: the
    cache is only a copy, dropped and rebuilt from the sets."""


class VolumeReadOnly(CommandFailed):
    """The backup volume is mounted read-only (the kernel remounts ext4 so after an I/O
    error): nothing can be backed up, pruned or sealed until it is writable again."""


def read_only_volume(volume: object) -> VolumeReadOnly:
    return VolumeReadOnly(
        f"the backup volume {volume} is read-only (remounted after a disk error?): nothing "
        "can be written to it",
        hint="look for I/O errors (dmesg), unmount it and run fsck, mount it again (or reboot: "
        "`dupctl init` mounts it), then rerun; the sets already on it are untouched",
    )


class ConfigError(UsageError):
    """The inventory (/etc/duplicity/dupstack.yaml) is missing or invalid: names file and key."""


class UnknownHost(ConfigError):
    """A command named a host that the inventory does not list."""


class RemoteCommandFailed(CommandFailed):
    """A command on a tenant host failed (its exit code and last stderr line are named)."""


class HostUnreachable(DupstackError):
    """A tenant host did not answer on its SSH port (down, firewalled, wrong address)."""

    exit_code = 8


class HostKeyRejected(DupstackError):
    """A tenant host offered an SSH host key other than the pinned one, or none is pinned."""

    exit_code = 9


class HostAccessDenied(DupstackError):
    """A tenant host refused the server's key, or its user lacks passwordless sudo."""

    exit_code = 10


class HostNotReady(DupstackError):
    """A tenant host lacks what backups need (duplicity >= 3)."""

    exit_code = 11


class HostBusy(DupstackError):
    """Another dupctl run holds the host's lock (a backup, or prune, is running)."""

    exit_code = 12


class HookFailed(DupstackError):
    """A "before" hook of a host's run failed: the backup was not made."""

    exit_code = 13


class QuotaExceeded(DupstackError):
    """A host is over its quota, or the volume below its reserve: its run was stopped."""

    exit_code = 14


class DrillFailed(DupstackError):
    """A restore drill found files that do not come back as the host has them, or could not
    restore the sample at all (the failing paths are named)."""

    exit_code = 15


class NotificationFailed(DupstackError):
    """No URL of the notifications took a message, or a host's ping failed."""

    exit_code = 16


class OffsiteFailed(DupstackError):
    """An offsite target refused or lost a copy, or is unreachable (the target, the object and
    the service's own error are named, never a credential)."""

    exit_code = 17


class ThawNeeded(DupstackError):
    """A restore from offsite needs archived objects (Glacier, Deep Archive) that are not
    readable yet: each is named with what a thaw costs and takes; nothing was restored."""

    exit_code = 18


class RestoreIncomplete(DupstackError):
    """A restore brought the files back, but some of what the set's metadata record holds
    (an extended attribute, ACL, capability, hard link or hole) could not be re-applied
    there: each path is named."""

    exit_code = 19


class NotInBackup(DupstackError):
    """A host has no backup yet, or the path asked for is not in it at that time."""


class BackupDamaged(DupstackError):
    """A backup file on the volume no longer matches its manifest (changed or corrupted)."""


class BackupDiffers(DupstackError):
    """verify found differences between a backup and the host's files."""


class TargetNotEmpty(UsageError):
    """A restore target exists (and is not an empty folder): restore never overwrites."""


class Stopped(DupstackError):
    """dupctl was told to stop (SIGTERM): the runs under way were stopped, cleanly."""

    exit_code = 20
