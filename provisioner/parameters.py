"""Pure builders of the stack parameters, and the passcode that protects the key escrow."""

from __future__ import annotations

import ipaddress
import re
import secrets
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from provisioner.errors import UsageError

MIN_PASSCODE = 12
VOLUME_SIZE_RANGE = (10, 10000)
MASK = "******"


def check_cidr(value: str, option: str) -> str:
    """`value` as a normalised CIDR, or a UsageError naming `option`."""
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError as exc:
        raise UsageError(
            f"{option} {value!r} is not a CIDR", f"write it like 203.0.113.7/32 ({exc})"
        ) from exc


def check_volume_size(size: int) -> int:
    low, high = VOLUME_SIZE_RANGE
    if not low <= size <= high:
        raise UsageError(
            f"--volume-size {size} is out of range", f"choose between {low} and {high} GB"
        )
    return size


def read_passcode(path: Path) -> tuple[str, str]:
    """The passcode in `path` (one line) and a warning if the file is readable by others."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise UsageError(
            f"cannot read --passcode-file {path}: {exc.strerror}",
            "give a file that holds the passcode on one line",
        ) from exc
    passcode = text.rstrip("\r\n")
    if "\n" in passcode:
        raise UsageError(f"--passcode-file {path} has more than one line", "keep one line")
    if len(passcode) < MIN_PASSCODE:
        raise UsageError(
            f"the passcode in {path} is shorter than {MIN_PASSCODE} characters",
            "use a longer passcode, or omit --passcode-file to have one generated",
        )
    warning = ""
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warning = f"{path} is readable by other users: chmod 600 {path}"
    return passcode, warning


def generate_passcode() -> str:
    """A new random passcode (32 URL-safe characters, 192 bits)."""
    return secrets.token_urlsafe(24)


def stack_parameters(
    *,
    keypair: str,
    flavor: str,
    image: str,
    ssh_user: str,
    public_network: str,
    ssh_cidr: str,
    subnet_cidr: str,
    passcode: str,
    volume_size: int,
    volume_type: str,
    restore_volume: str | None,
) -> dict[str, Any]:
    """Heat parameters of the create template, or of the restore template with a volume."""
    parameters: dict[str, Any] = {
        "keypair_name": keypair,
        "flavor_name": flavor,
        "image": image,
        "ssh_user": ssh_user,
        "public_network": public_network,
        "ssh_allowed_cidr": check_cidr(ssh_cidr, "--ssh-cidr"),
        "backup_subnet_cidr": check_cidr(subnet_cidr, "--subnet-cidr"),
        "passcode": passcode,
    }
    if restore_volume:
        parameters["volume_id"] = restore_volume
    else:
        parameters["volume_size"] = check_volume_size(volume_size)
        if volume_type:
            parameters["volume_type"] = volume_type
    return parameters


def masked(parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters for display: the passcode hidden, and the parts of a URL that are
    credentials (user:password@) or a signature (a temporary URL's query)."""
    return {
        key: MASK if key == "passcode" else _masked_url(value) if key in URL_PARAMETERS else value
        for key, value in parameters.items()
    }


URL_PARAMETERS = ("package_index", "wheelhouse_url")


def _masked_url(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{MASK}@{parts.hostname or ''}" if parts.username or parts.password else parts.netloc
    if parts.port and netloc.startswith(MASK):
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc, query=MASK if parts.query else ""))


SHA256 = re.compile(r"[0-9a-f]{64}")
URL = re.compile(r"https?://[!-~]{1,1016}")
# Canonical PEP 440 release versions (as the server's installer checks them).
VERSION = re.compile(r"[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?")


def agent_parameters(
    *,
    version: str | None,
    sha256: str | None,
    index: str | None,
    wheelhouse_url: str | None,
    wheelhouse_sha256: str | None,
) -> dict[str, str]:
    """The template parameters that say where the server installs its agent; only those
    given (Heat's defaults pin the release the template was made with)."""
    if (version is None) != (sha256 is None):
        raise UsageError(
            "--agent-version and --agent-sha256 go together",
            "give both: the release and the sha256 of its wheel (docs/releasing.md)",
        )
    if (wheelhouse_url is None) != (wheelhouse_sha256 is None):
        raise UsageError(
            "--wheelhouse-url and --wheelhouse-sha256 go together",
            "give both: the sha256 is checked before anything is installed",
        )
    checks = (
        ("--agent-version", "agent_version", version, VERSION, "a release version like 0.2.0"),
        ("--agent-sha256", "agent_sha256", sha256, SHA256, "64 lowercase hex digits"),
        ("--package-index", "package_index", index, URL, "an http(s) URL in ASCII"),
        ("--wheelhouse-url", "wheelhouse_url", wheelhouse_url, URL, "an http(s) URL in ASCII"),
        ("--wheelhouse-sha256", "wheelhouse_sha256", wheelhouse_sha256, SHA256,
         "64 lowercase hex digits"),
    )  # fmt: skip
    parameters = {}
    for option, name, value, pattern, expected in checks:
        if value is None:
            continue
        if not pattern.fullmatch(value):
            shown = _masked_url(value) if name in URL_PARAMETERS else value
            raise UsageError(f"{option} {shown!r} is not {expected}", f"check {option}")
        parameters[name] = value
    return parameters
