"""The backup server's user-data (cloud-config), as embedded in the Heat templates."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_DATA = ROOT / "cloud-init" / "user-data.yaml"

# Tokens that Heat's str_replace fills in at stack creation.
TOKENS = (
    "__DUPSTACK_PASSCODE__",
    "__DUPSTACK_VOLUME_ID__",
    "__DUPSTACK_SSH_USER__",
    "__DUPSTACK_MODE__",
)


def render_user_data() -> str:
    """The cloud-config text, with Heat's str_replace tokens still in place."""
    return USER_DATA.read_text()
