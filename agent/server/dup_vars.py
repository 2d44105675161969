"""/etc/duplicity/dup_vars.sh: after `source`, the old guide's raw duplicity commands work."""

from __future__ import annotations

from shlex import quote

from agent.paths import ServerPaths


def dup_vars_script(paths: ServerPaths, fingerprint: str) -> str:
    """The shell settings for duplicity with this server's key and passphrase."""
    return f"""\
# dupstack: duplicity settings of this backup server (written by `dupctl init`).
# source {paths.dup_vars}, then e.g.
#   duplicity --encrypt-key "$ENCRYPT_KEY" --sign-key "$SIGN_KEY" /etc file://{paths.mount_point}/local-etc
#   duplicity /etc file://{paths.mount_point}/local-etc    (no key: PASSPHRASE encrypts)
#   duplicity restore file://{paths.mount_point}/local-etc /tmp/restored-etc
export GNUPGHOME={quote(str(paths.gnupg_home))}
export ENCRYPT_KEY={fingerprint}
export SIGN_KEY={fingerprint}
PASSPHRASE="$(cat {quote(str(paths.passphrase_file))})"
export PASSPHRASE
export SIGN_PASSPHRASE="$PASSPHRASE"
"""
