"""An offsite target's credentials: `key = value` lines in a root-only file the inventory
names (`offsite.targets.NAME.credentials_file`), never in the YAML, argv, logs or errors.

Swift: a Keystone v3 application credential (what `stack-offsite` makes), or a user and
project; `auth_version = 1` with `user` and `key` is for test rigs and legacy clouds (tempauth,
swauth), which have no Keystone."""

from __future__ import annotations

from collections.abc import Mapping

from agent.config.load import OffsiteTarget
from agent.errors import ConfigError
from agent.files import read_secret_text
from agent.paths import ServerPaths

MAX_FILE = 64 * 1024
# Each type's accepted sets of keys (one of them must be complete).
KEYS = {
    "s3": (("aws_access_key_id", "aws_secret_access_key"),),
    "swift": (
        ("application_credential_id", "application_credential_secret"),
        ("username", "password", "project_name", "user_domain_name", "project_domain_name"),
        ("auth_version", "user", "key"),
    ),
}
OPTIONAL = {"s3": ("aws_session_token",), "swift": ()}


def read_credentials(paths: ServerPaths, target: OffsiteTarget) -> Mapping[str, str]:
    """The target's credentials; ConfigError naming the file and the key that is wrong
    (never a value)."""
    key = f"offsite.targets.{target.name}.credentials_file"
    file = paths.under(target.credentials_file)
    example = "write " + " and ".join(f"'{k} = ...'" for k in KEYS[target.type][0])
    text = read_secret_text(file, key, "it holds credentials", MAX_FILE, f"{example} into {file}")
    found: dict[str, str] = {}
    allowed = {name for names in KEYS[target.type] for name in names} | set(OPTIONAL[target.type])
    sections = 0
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        sections += line.startswith("[")
        if sections > 1:
            raise ConfigError(
                f"{file} ({key}) line {number}: a second [section]: one target, one set of "
                "credentials per file",
                hint=f"keep one set in {file}",
            )
        if not line or line.startswith(("#", ";", "[")):  # comments, an INI section header
            continue
        name, equals, value = line.partition("=")
        name = name.strip()
        if not equals or name not in allowed:
            raise ConfigError(
                f"{file} ({key}) line {number}: expected 'NAME = VALUE' with NAME one of "
                f"{', '.join(sorted(allowed))}",
                hint=f"{example} into {file}",
            )
        found[name] = value.strip()
    if found.get("auth_version", "1") != "1":
        raise ConfigError(
            f"{file} ({key}): auth_version must be 1 (tempauth, swauth): Keystone v3 takes "
            "application_credential_id or username",
            hint=f"{example} into {file}",
        )
    for names in KEYS[target.type]:
        if all(found.get(name) for name in names):
            return found
    alternatives = " (or the username set, or auth_version = 1 with user and key)"
    raise ConfigError(
        f"{file} ({key}) lacks {' and '.join(KEYS[target.type][0])}"
        + (alternatives if target.type == "swift" else ""),
        hint=f"{example} into {file}",
    )
