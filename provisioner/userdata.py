"""The backup server's user-data (cloud-config), as embedded in the Heat templates.

The templates must be self-contained, so the dupctl agent travels inside the user-data: a
source archive of agent/ with its own minimal pyproject, bzip2'd and base64'd into a
write_files entry. Nova's 64 KiB limit is tight, so the archived sources are compacted: an
AST round trip drops comments and docstrings (nothing in the agent reads them at run time),
and the cloud-config loses its comment lines. The archive is deterministic (sorted entries,
fixed owners, modes and mtimes; bzip2 has no timestamps): the same sources always render the
same templates.
"""

from __future__ import annotations

import ast
import base64
import bz2
import io
import json
import re
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER_DATA = ROOT / "cloud-init" / "user-data.yaml"
AGENT = ROOT / "agent"
PYPROJECT = ROOT / "pyproject.toml"

# Tokens that Heat's str_replace fills in at stack creation.
TOKENS = (
    "__DUPSTACK_PASSCODE__",
    "__DUPSTACK_VOLUME_ID__",
    "__DUPSTACK_SSH_USER__",
    "__DUPSTACK_MODE__",
)
# Where cloud-init/user-data.yaml takes the agent archive.
ARCHIVE_MARKER = "AGENT_ARCHIVE_BASE64"
ARCHIVE_NAME = "dupstack-agent"
# The agent's dependencies on the server: base, SSH/notifications, duplicity's runtime.
SERVER_EXTRAS = ("remote", "server")
# Nova refuses user_data over 65,535 bytes once base64-encoded.
NOVA_USER_DATA_LIMIT = 65535


def agent_pyproject() -> str:
    """A pyproject.toml that installs only the agent (dupctl), derived from the project's."""
    project = tomllib.loads(PYPROJECT.read_text())
    meta = project["project"]
    extras = meta.get("optional-dependencies", {})
    dependencies = [*meta["dependencies"], *(dep for name in SERVER_EXTRAS for dep in extras[name])]
    package_data = project["tool"]["setuptools"]["package-data"].get("agent", [])
    return f"""\
[build-system]
requires = {json.dumps(project["build-system"]["requires"])}
build-backend = "{project["build-system"]["build-backend"]}"

[project]
name = "{ARCHIVE_NAME}"
version = "{meta["version"]}"
description = "dupctl, the dupstack agent on the backup server"
requires-python = "{meta["requires-python"]}"
dependencies = {json.dumps(dependencies)}

[project.scripts]
dupctl = "{meta["scripts"]["dupctl"]}"

[tool.setuptools.packages.find]
include = ["agent*"]

[tool.setuptools.package-data]
agent = {json.dumps(package_data)}
"""


def compact_source(source: str) -> str:
    """The same Python module without comments and docstrings."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                if isinstance(first.value.value, str):
                    node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


def compact_json(text: str) -> str:
    """The same JSON without `description` keys and whitespace (dupctl's errors use
    `x-expected`, never the descriptions)."""

    def strip(value: object) -> object:
        if isinstance(value, dict):
            return {key: strip(item) for key, item in value.items() if key != "description"}
        return [strip(item) for item in value] if isinstance(value, list) else value

    return json.dumps(strip(json.loads(text)), separators=(",", ":"), ensure_ascii=False)


def _archived(path: Path) -> bytes:
    if path.suffix == ".py":
        return compact_source(path.read_text()).encode()
    if path.suffix == ".json":
        return compact_json(path.read_text()).encode()
    return path.read_bytes()


def _agent_files() -> list[tuple[str, bytes]]:
    """(archive name, content) of the agent's sources, sorted."""
    files = [
        (f"agent/{path.relative_to(AGENT).as_posix()}", _archived(path))
        for path in AGENT.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".json")
    ]
    return sorted([("pyproject.toml", agent_pyproject().encode()), *files])


def agent_archive() -> bytes:
    """The agent as a deterministic .tar.bz2 source archive (pip installs it; bz2 packs this
    text tighter than xz or gzip)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in _agent_files():
            info = tarfile.TarInfo(f"{ARCHIVE_NAME}/{name}")
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    return bz2.compress(buffer.getvalue(), compresslevel=9)


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


def render_user_data() -> str:
    """The cloud-config text with the agent embedded, Heat's str_replace tokens still in place."""
    text = strip_comments(USER_DATA.read_text())
    if text.count(ARCHIVE_MARKER) != 1:
        raise ValueError(f"{USER_DATA}: {ARCHIVE_MARKER} must appear exactly once")
    return text.replace(ARCHIVE_MARKER, base64.b64encode(agent_archive()).decode())
