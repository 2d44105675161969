"""Only root may reach the metadata service, which serves user_data (the passcode with it)."""

from __future__ import annotations

from pathlib import Path

METADATA_IPV4 = "169.254.169.254"
METADATA_IPV6 = "fe80::a9fe:a9fe"
TABLE = "inet dupstack_metadata"


def metadata_lock_rules() -> str:
    """An nftables script that (re)creates the lock table atomically."""
    return f"""\
# dupstack: non-root processes may not reach the metadata service (it serves user_data,
# which holds the passcode). Written by `dupctl init`; cloud-init's bootcmd re-applies it
# at every boot: nft -f THIS_FILE
table {TABLE}
delete table {TABLE}
table {TABLE} {{
\tchain output {{
\t\ttype filter hook output priority filter; policy accept;
\t\tip daddr {METADATA_IPV4} meta skuid != 0 reject
\t\tip6 daddr {METADATA_IPV6} meta skuid != 0 reject
\t}}
}}
"""


def nft_apply_argv(rules_file: Path) -> tuple[str, ...]:
    return ("nft", "-f", str(rules_file))
