"""Packaging: the agent installs on the server without the OpenStack client libraries."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with dupstack's wheel built from this checkout, run outside it. Its
    dependencies come from this venv's site-packages through a .pth line (which does not run
    the editable install's finder: only the wheel's own code is importable)."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--wheel",
            "--outdir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("dupstack-*.whl")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python")]
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    [site] = (venv / "lib").glob("python3.*/site-packages")
    (site / "dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_the_wheel_runs_stack_start_outside_the_checkout(wheel_venv: Path, tmp_path: Path) -> None:
    passcode = tmp_path / "passcode"
    passcode.write_text("a passcode of sixteen\n")
    passcode.chmod(0o600)
    done = subprocess.run(
        [str(wheel_venv / "bin" / "stack-start"), "demo", "--keypair", "k", "--flavor", "f",
         "--image", "i", "--ssh-cidr", "203.0.113.7/32", "--passcode-file", str(passcode),
         "--dry-run"],
        cwd=tmp_path, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [shown] = re.findall(r"^# template: (.+)$", done.stdout, re.MULTILINE)
    assert Path(shown).is_relative_to(wheel_venv) and not Path(shown).is_relative_to(ROOT)
    assert Path(shown).read_text() == (ROOT / "heat" / "dupstack.heat.yaml").read_text()
    release = json.loads((ROOT / "heat" / "src" / "release.json").read_text())
    assert f"default: {release['wheel_sha256']}" in done.stdout


def test_dupctl_without_the_server_extras_says_what_to_install(wheel_venv: Path) -> None:
    absent = (
        "import sys; sys.modules['paramiko'] = None; from agent.entry import main; sys.exit(main())"
    )
    python = str(wheel_venv / "bin" / "python")
    helped = subprocess.run([python, "-c", absent, "--help"], cwd="/", capture_output=True,
                            text=True)  # fmt: skip
    assert helped.returncode == 0 and "backup" in helped.stdout  # help needs none of them
    done = subprocess.run([python, "-c", absent, "backup", "--all"], cwd="/",
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "dupctl: error: this install lacks the backup server's dependencies (no module 'paramiko')",
        "dupctl: hint: dupctl runs on the backup server (stack-start installs it there); "
        "to run it here: pip install 'dupstack[remote,server]'",
    ]


def test_the_agent_distribution_carries_only_the_agent_and_its_lock(tmp_path: Path) -> None:
    from scripts.dist import build_agent

    wheel = build_agent(tmp_path, "9.9.9")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read("dupstack_agent-9.9.9.dist-info/METADATA").decode()
    assert "agent/data/server-requirements.txt" in names
    assert "agent/data/dupstack-install" in names
    assert not [name for name in names if name.startswith(("provisioner/", "tests/"))]
    assert "Version: 9.9.9" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [line for line in requires if "openstack" in line]
    lock = (ROOT / "agent" / "data" / "server-requirements.txt").read_text()
    for line in requires:  # every dependency is pinned, with hashes, in the lock
        name = re.split(r"[<>=!~; ]", line.removeprefix("Requires-Dist: "))[0]
        canonical = re.sub(r"[-_.]+", "-", name).lower()  # as uv writes it (PEP 503)
        assert re.search(rf"(?im)^{re.escape(canonical)}==\S+ \\\n\s+--hash=sha256:", lock), name


def test_the_agent_wheel_builds_reproducibly(tmp_path: Path) -> None:
    """The templates pin a hash: anyone can rebuild a release and compare."""
    from scripts.dist import build_agent, sha256

    first = build_agent(tmp_path / "a")
    time.sleep(1.1)  # a clock that shows in the wheel would show here
    other = tmp_path / "other-checkout" / "agent"  # another clone: new mtimes, another umask
    shutil.copytree(ROOT / "agent", other, ignore=shutil.ignore_patterns("__pycache__"))
    for path in other.rglob("*"):
        path.chmod(path.stat().st_mode | 0o020)
        os.utime(path)
    second = build_agent(tmp_path / "b", source=other)
    assert sha256(first) == sha256(second)


def test_the_lock_is_complete_for_this_interpreter() -> None:
    """Every dependency of every locked wheel (as `make deps` downloaded them for this
    Python) is locked too, at a version it accepts: `pip install --no-deps` misses nothing."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    from packaging.version import Version

    wheels = sorted((ROOT / ".cache" / "wheelhouse").glob("*.whl"))
    assert len(wheels) > 20, "run `make deps`"
    locked = {}
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        locked[canonicalize_name(name)] = Version(version)
    for wheel in wheels:
        if wheel.name.startswith("duplicity-"):
            continue  # installed without its declared (cloud SDK) dependencies, by design
        with zipfile.ZipFile(wheel) as archive:
            # the wheel's own, at the top (setuptools vendors others' below)
            [metadata] = [n for n in archive.namelist()
                          if n.endswith(".dist-info/METADATA") and n.count("/") == 1]  # fmt: skip
            text = archive.read(metadata).decode()
        for line in text.splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            requirement = Requirement(line.removeprefix("Requires-Dist:").strip())
            if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
                continue
            name = canonicalize_name(requirement.name)
            assert name in locked, f"{wheel.name} needs {requirement}, which is not locked"
            assert requirement.specifier.contains(locked[name], prereleases=True), (
                f"{wheel.name} needs {requirement}; the lock has {locked[name]}"
            )


def test_the_templates_pin_the_agent_this_tree_builds(tmp_path: Path) -> None:
    """heat/src/release.json (and so the templates' defaults) is this commit's agent wheel."""
    from scripts.dist import build_agent, project_version, sha256

    release = json.loads((ROOT / "heat" / "src" / "release.json").read_text())
    assert release["version"] == project_version()
    assert sha256(build_agent(tmp_path)) == release["wheel_sha256"], (
        "the agent changed since the last `make dist`: run it and commit heat/"
    )
