"""The layers stay apart: checked on the imports themselves (ast), not by convention."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports (absolute names), at any depth of the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_no_action_imports_another() -> None:
    for path in sources("agent/actions"):
        own = f"agent.actions.{path.stem}"
        others = {name for name in imports(path) if name.startswith("agent.actions.")}
        assert not {name for name in others if not name.startswith(own)}, path


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("provisioner", "agent"),  # the user's machine never needs the server's package
        ("agent", "provisioner"),
        ("bench", "tests"),
        ("scripts", "tests"),
        ("fleet", "tests"),
        ("localcloud", "tests"),
    ],
)
def test_layers_do_not_reach_into_each_other(folder: str, forbidden: str) -> None:
    for path in sources(folder):
        found = [name for name in imports(path) if name.split(".")[0] == forbidden]
        assert not found, f"{path.relative_to(ROOT)} imports {found}"


def test_the_checks_above_do_see_imports(tmp_path: Path) -> None:
    """So that they cannot pass by reading nothing."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from agent.actions.backup import backup_hosts\n")
    assert "agent.actions.backup" in set(imports(sample))
    assert len(sources("agent/actions")) > 10
