"""`make dist`: build a release: dupstack-agent (the server's), then dupstack (the user's).

    .venv/bin/python scripts/dist.py [--out dist]

Two distributions from one tree, because the templates pin the server's package by sha256
and ship inside the user's package: one file cannot carry its own hash.
- `dupstack-agent`: agent/ only, with the hash-locked server set
  (agent/data/server-requirements.txt); what a backup server installs (dupstack-install).
- `dupstack`: the provisioner, the templates pinned to that agent wheel, and the agent too
  (dupctl for development and tests).
Steps: build the agent wheel and sdist, record its version and sha256 in
heat/src/release.json, render the templates, build dupstack's sdist and wheel. Builds run
without isolation (the venv's setuptools), so no index is needed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provisioner.render import RELEASE, render_all  # noqa: E402

AGENT_DIST = "dupstack-agent"
SERVER_EXTRAS = ("remote", "server")


def project_version() -> str:
    """The release version: it lives in pyproject.toml only."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def agent_pyproject(version: str) -> str:
    """A pyproject.toml that installs only the agent (dupctl), derived from the project's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    meta = project["project"]
    extras = meta.get("optional-dependencies", {})
    dependencies = [*meta["dependencies"], *(dep for name in SERVER_EXTRAS for dep in extras[name])]
    package_data = project["tool"]["setuptools"]["package-data"]["agent"]
    return f"""\
[build-system]
requires = {json.dumps(project["build-system"]["requires"])}
build-backend = "{project["build-system"]["build-backend"]}"

[project]
name = "{AGENT_DIST}"
version = "{version}"
description = "dupctl, the dupstack agent on the backup server"
license = "{meta["license"]}"
requires-python = "{meta["requires-python"]}"
dependencies = {json.dumps(dependencies)}

[project.scripts]
dupctl = "{meta["scripts"]["dupctl"]}"

[tool.setuptools.packages.find]
include = ["agent*"]

[tool.setuptools.package-data]
agent = {json.dumps(package_data)}
"""


# One tree (and one setuptools) builds the same bytes anywhere, so anyone can check that a
# published wheel is this commit's: files take their times from here, and each wheel is
# rewritten with sorted entries and that time (setuptools stamps dist-info with the clock).
REPRODUCIBLE = {"SOURCE_DATE_EPOCH": "315532800"}  # 1980-01-01, the zip format's first day
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _build(source: Path, out: Path, *kinds: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            *kinds,
            "--outdir",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **REPRODUCIBLE},
    )


def normalize_wheel(wheel: Path) -> None:
    """Rewrite `wheel` with its entries sorted, dated ZIP_EPOCH and moded 0644 or 0755
    (contents kept; RECORD's hashes are of the contents, so it stays true)."""
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    temporary = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(temporary, "w", zipfile.ZIP_DEFLATED) as target:
        for info, data in sorted(entries, key=lambda entry: entry[0].filename):
            fixed = zipfile.ZipInfo(info.filename, ZIP_EPOCH)
            executable = (info.external_attr >> 16) & 0o111
            fixed.external_attr = (0o100755 if executable else 0o100644) << 16  # not the umask's
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, data)
    temporary.replace(wheel)


def build_agent(
    out: Path, version: str | None = None, sdist: bool = False, source: Path = ROOT / "agent"
) -> Path:
    """Build the dupstack-agent wheel (of `version`, default the project's) into `out`."""
    version = version or project_version()
    with tempfile.TemporaryDirectory() as scratch:
        stage = Path(scratch) / "dupstack-agent"
        shutil.copytree(source, stage / "agent", ignore=shutil.ignore_patterns("__pycache__"))
        (stage / "pyproject.toml").write_text(agent_pyproject(version))
        _build(stage, out, "--wheel", *(("--sdist",) if sdist else ()))
    wheel = out / f"{AGENT_DIST.replace('-', '_')}-{version}-py3-none-any.whl"
    normalize_wheel(wheel)
    return wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    out = parser.parse_args().out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_agent(out, sdist=True)
    release = {"version": project_version(), "wheel_sha256": sha256(wheel)}
    RELEASE.write_text(json.dumps(release, indent=2) + "\n")
    for path, text in render_all(release).items():
        path.write_text(text)
    _build(ROOT, out, "--wheel", "--sdist")
    normalize_wheel(out / f"dupstack-{release['version']}-py3-none-any.whl")
    print(f"dupstack {release['version']}: {out}")
    for artifact in sorted(out.glob(f"*{release['version']}*")):
        print(f"  {artifact.name}  sha256 {sha256(artifact)}")
    print(f"templates pin {wheel.name} (sha256 {release['wheel_sha256']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
