"""The default backup schedule in /etc/cron.d: weekly full, daily incremental."""

from __future__ import annotations

from shlex import quote

from agent.paths import ServerPaths

KEEP_FULL_CHAINS = 5


def default_crontab(paths: ServerPaths) -> str:
    """Back up this server's /etc to the volume; nothing runs if the volume is not mounted."""
    target = f"file://{paths.mount_point}/local-etc"
    prefix = (
        f"root mountpoint -q {quote(str(paths.mount_point))}"
        f" && . {quote(str(paths.dup_vars))} && duplicity"
    )
    keys = '--encrypt-key "$ENCRYPT_KEY" --sign-key "$SIGN_KEY"'
    log = "2>&1 | logger -t dupstack-backup"
    return f"""\
# dupstack default schedule, written once by `dupctl init`: edit freely, init keeps it.
# Backs up this server's /etc to the backup volume with the backup key: a full backup on
# Sundays (keeping {KEEP_FULL_CHAINS} full chains), incremental ones on the other days.
# Output: journalctl -t dupstack-backup
SHELL=/bin/sh
PATH=/opt/dupstack/current/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
30 2 * * 0   {prefix} full {keys} /etc {target} {log}
50 2 * * 0   {prefix} remove-all-but-n-full {KEEP_FULL_CHAINS} --force {target} {log}
30 2 * * 1-6 {prefix} incremental {keys} /etc {target} {log}
"""
