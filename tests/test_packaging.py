"""Packaging: the agent installs on the server without the OpenStack client libraries."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPENSTACK_LIBS = ("openstacksdk", "python-heatclient", "keystoneauth1")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_base_dependencies_carry_no_openstack_client() -> None:
    base = " ".join(_pyproject()["project"]["dependencies"]).lower()
    assert not [lib for lib in OPENSTACK_LIBS if lib in base]


def test_openstack_client_is_in_the_provisioner_extra() -> None:
    extra = " ".join(_pyproject()["project"]["optional-dependencies"]["provisioner"]).lower()
    assert "openstacksdk" in extra


def test_agent_imports_without_openstack() -> None:
    """Importing the agent's CLI must not pull in openstack (absent on the server)."""
    code = (
        "import sys, agent.cli\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('openstack', 'keystoneauth1', 'heatclient', 'provisioner'))\n"
        "print(','.join(leaked))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_console_scripts_point_at_existing_functions() -> None:
    import importlib

    for target in _pyproject()["project"]["scripts"].values():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), target
