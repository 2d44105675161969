"""The backup server's user-data (cloud-config), as embedded in the Heat templates.

The templates stay self-contained without carrying the agent: the user-data holds the
installer (agent/data/dupstack-install, gzipped) and the pins it reads from Heat's parameters (the
dupstack release and its wheel's sha256, and where to fetch it); the agent, its locked
dependencies and duplicity come from a package index at first boot. So the user-data stays a
few KiB whatever the agent's size. Its comment lines (they explain the source, not the
server) are dropped.
"""

from __future__ import annotations

import base64
import gzip
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_DATA = ROOT / "cloud-init" / "user-data.yaml"
INSTALLER = ROOT / "agent" / "data" / "dupstack-install"

# Tokens that Heat's str_replace fills in at stack creation.
TOKENS = (
    "__DUPSTACK_PASSCODE__",
    "__DUPSTACK_VOLUME_ID__",
    "__DUPSTACK_SSH_USER__",
    "__DUPSTACK_MODE__",
    "__DUPSTACK_AGENT_VERSION__",
    "__DUPSTACK_AGENT_SHA256__",
    "__DUPSTACK_PACKAGE_INDEX__",
    "__DUPSTACK_WHEELHOUSE_URL__",
    "__DUPSTACK_WHEELHOUSE_SHA256__",
)
# Where cloud-init/user-data.yaml takes the installer (gz+b64, a write_files encoding).
INSTALLER_MARKER = "AGENT_INSTALLER"
# Nova refuses user_data over 65,535 bytes once base64-encoded; dupstack keeps far below.
NOVA_USER_DATA_LIMIT = 65535
USER_DATA_BUDGET = 16 * 1024

BLOCK_SCALAR = re.compile(r":\s*[|>][0-9+-]*\s*$")


def strip_comments(cloud_config: str) -> str:
    """The cloud-config without its comment lines (they explain the source, not the server).

    Lines inside block scalars (`content: |`) are file content, `#!/bin/sh` included: kept."""
    lines = cloud_config.splitlines(keepends=True)
    kept = [lines[0]]  # #cloud-config
    block_indent = None  # indentation of the key that opened the current block scalar
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip())
        if block_indent is not None and (not line.strip() or indent > block_indent):
            kept.append(line)
            continue
        block_indent = None
        if line.lstrip().startswith("#"):
            continue
        if BLOCK_SCALAR.search(line):
            block_indent = indent if not line.lstrip().startswith("- ") else indent + 2
        kept.append(line)
    return "".join(kept)


def installer_gz_b64() -> str:
    """The installer as cloud-init's gz+b64 (gzip without a timestamp: deterministic)."""
    packed = gzip.compress(INSTALLER.read_bytes(), compresslevel=9, mtime=0)
    return base64.b64encode(packed).decode()


def render_user_data() -> str:
    """The cloud-config text with the installer inlined, Heat's str_replace tokens in place."""
    text = strip_comments(USER_DATA.read_text())
    if text.count(INSTALLER_MARKER) != 1:
        raise ValueError(f"{USER_DATA}: {INSTALLER_MARKER} must appear exactly once")
    return text.replace(INSTALLER_MARKER, installer_gz_b64())
