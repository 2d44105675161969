"""`make wheelhouse`: one .tar of everything a backup server installs, for a cloud without
internet: the release's dupstack-agent wheel (as `make dist` built and the templates pin it)
and the locked set for one image's Python and CPU.

    .venv/bin/python scripts/wheelhouse.py --python 3.11 --arch x86_64 [--out dist]

Put the .tar in a Swift container and pass a temporary URL and the printed sha256 as the
template's wheelhouse parameters (stack-start --wheelhouse-url URL --wheelhouse-sha256 H).
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.dist import AGENT_DIST, sha256  # noqa: E402
from scripts.lock import PLATFORMS, download  # noqa: E402


def build(python: str, arch: str, out: Path) -> Path:
    """The wheelhouse .tar for one image; SystemExit if dist/ lacks the pinned agent wheel."""
    release = json.loads((ROOT / "heat" / "src" / "release.json").read_text())
    wheel = out / f"{AGENT_DIST.replace('-', '_')}-{release['version']}-py3-none-any.whl"
    if not wheel.is_file() or sha256(wheel) != release["wheel_sha256"]:
        raise SystemExit(f"{wheel} is not the wheel the templates pin: run `make dist` first")
    tar = out / f"dupstack-wheelhouse-{release['version']}-py{python}-{arch}.tar"
    with tempfile.TemporaryDirectory() as scratch:
        download(python, arch, Path(scratch))
        with tarfile.open(tar, "w") as archive:
            for file in sorted([*Path(scratch).iterdir(), wheel]):
                archive.add(file, arcname=file.name)
    return tar


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.11", choices=sorted({p for p, _ in PLATFORMS}))
    parser.add_argument("--arch", default="x86_64", choices=sorted({a for _, a in PLATFORMS}))
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    tar = build(args.python, args.arch, args.out.resolve())
    print(f"{tar}\nsha256 {sha256(tar)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
