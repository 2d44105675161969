"""What `make templates` leaves out to fit Nova's limit must not change what the server gets."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from provisioner.userdata import AGENT, USER_DATA, compact_source, strip_comments


def test_stripping_comments_keeps_every_value_of_the_cloud_config() -> None:
    source = USER_DATA.read_text()
    stripped = strip_comments(source)
    assert yaml.safe_load(stripped) == yaml.safe_load(source)
    assert stripped.startswith("#cloud-config\n")
    assert len(stripped) < len(source)


def test_comment_like_lines_inside_file_contents_are_kept() -> None:
    config = (
        "#cloud-config\n"
        "# a comment\n"
        "write_files:\n"
        "  - path: /x.sh\n"
        "    content: |\n"
        "      #!/bin/sh\n"
        "      # a comment of the script\n"
        "\n"
        "      echo ok\n"
        "  # another comment\n"
        "  - content: |2-\n"
        "      # kept too\n"
        "    path: /y\n"
    )
    stripped = strip_comments(config)
    assert yaml.safe_load(stripped) == yaml.safe_load(config)
    assert "a comment\n" not in stripped.replace("a comment of the script", "")
    assert "another comment" not in stripped


def test_compacted_agent_modules_lose_only_docstrings() -> None:
    """Same definitions, same statements after the docstrings, no docstring left."""
    scoped = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for path in sorted(Path(AGENT).rglob("*.py")):
        original = ast.parse(path.read_text())
        compact = ast.parse(compact_source(path.read_text()))
        before = [n for n in ast.walk(original) if isinstance(n, scoped)]
        after = [n for n in ast.walk(compact) if isinstance(n, scoped)]
        assert [type(n) for n in before] == [type(n) for n in after], path
        for old, new in zip(before, after, strict=True):
            assert ast.get_docstring(new, clean=False) is None, path
            body = old.body[1:] if ast.get_docstring(old, clean=False) is not None else old.body
            kinds = [type(statement) for statement in body] or [ast.Pass]
            assert kinds == [type(statement) for statement in new.body], path
