"""dupctl passphrase HOST: print a host's backup passphrase, for duplicity by hand."""

from __future__ import annotations

import os
from collections.abc import Callable

from agent.config.load import load_inventory
from agent.errors import UsageError
from agent.host_passphrase import read_host_passphrase
from agent.paths import ServerPaths


def run_passphrase(
    paths: ServerPaths, host: str, *, say: Callable[[str], None], warn: Callable[[str], None]
) -> None:
    """`say` the passphrase of inventory host `host`, after `warn`ing that it is a secret."""
    if os.geteuid() != 0:
        raise UsageError(
            "dupctl passphrase must run as root", hint=f"sudo dupctl passphrase {host}"
        )
    load_inventory(paths).host(host)
    passphrase = read_host_passphrase(paths, host)
    warn(
        f"dupctl: warning: this is {host}'s backup passphrase: it decrypts every backup of "
        f"{host}; keep it out of shell history, logs and command lines"
    )
    say(passphrase)
