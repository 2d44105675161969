"""The backup server's user-data (cloud-config), as embedded in the Heat templates.

The templates must be self-contained, so the dupctl agent travels inside the user-data: a
source archive of agent/ with its own minimal pyproject, xz'd and base64'd into a
write_files entry. Nova's 64 KiB limit is tight, so the archived sources are compacted: an
AST round trip drops comments and docstrings (nothing in the agent reads them at run time). The archive is deterministic (sorted entries, fixed owners, modes
and mtimes; xz has no timestamps): the same sources always render the same templates.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import lzma
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


def _archived(path: Path) -> bytes:
    if path.suffix == ".py":
        return compact_source(path.read_text()).encode()
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
    """The agent as a deterministic .tar.xz source archive that pip installs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in _agent_files():
            info = tarfile.TarInfo(f"{ARCHIVE_NAME}/{name}")
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    return lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME)


def render_user_data() -> str:
    """The cloud-config text with the agent embedded, Heat's str_replace tokens still in place."""
    text = USER_DATA.read_text()
    if text.count(ARCHIVE_MARKER) != 1:
        raise ValueError(f"{USER_DATA}: {ARCHIVE_MARKER} must appear exactly once")
    return text.replace(ARCHIVE_MARKER, base64.b64encode(agent_archive()).decode())
