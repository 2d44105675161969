"""`make demo`: deploy the dupstack stack on a local Keystone + Heat and show what a user sees.

Nova, Neutron and Cinder cannot run here, so the local Heat maps their resource types to
stand-ins (localcloud/env); everything else is the real client path: password auth,
real HTTP, the committed template.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from localcloud import start_local_cloud  # noqa: E402

BIN = Path(sys.executable).parent
STACK = "demo"


def banner(text: str) -> None:
    print(f"\n\033[1m=== {text}\033[0m", flush=True)


def show(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run one of our commands the way a user would, echoing the command line."""
    print(f"$ {shlex.join([Path(argv[0]).name, *argv[1:]])}", flush=True)
    result = subprocess.run(argv, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"demo: {Path(argv[0]).name} exited {result.returncode}")
    return result


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dupstack-demo-") as tmp:
        work = Path(tmp)
        banner("starting a local Keystone + Heat on loopback (stand-ins for Nova/Neutron/Cinder)")
        with start_local_cloud(work / "cloud") as cloud:
            print(f"keystone {cloud.auth_url}\nheat     {cloud.heat_url}")
            env = {
                **os.environ,
                "OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml),
                "OS_CLOUD": cloud.cloud_name,
            }
            passcode_file = work / "passcode"
            passcode_file.write_text("demo-passcode-correct-horse\n")
            passcode_file.chmod(0o600)
            launch = [
                "--keypair", "demo-key", "--flavor", "m1.small", "--image", "debian-12",
                "--ssh-cidr", "198.51.100.0/24", "--passcode-file", str(passcode_file),
                "-e", str(cloud.environment_file),
            ]  # fmt: skip
            banner("stack-start: pre-flight, create, stream events, print how to reach it")
            show([str(BIN / "stack-start"), STACK, *launch], env)
            banner("stack-start again: the stack exists, so it reports and changes nothing")
            show([str(BIN / "stack-start"), STACK, *launch], env)
            banner("stack-get-url")
            show([str(BIN / "stack-get-url"), STACK], env)
            show([str(BIN / "stack-get-url"), STACK, "--ssh"], env)
            banner("stack-status")
            show([str(BIN / "stack-status"), STACK], env)
            banner("the backup server boots from the template's own user-data")
            show([sys.executable, str(ROOT / "scripts" / "demo_server.py")], env)
            banner("the backup server backs up two tenant hosts and restores an earlier version")
            show([sys.executable, str(ROOT / "scripts" / "demo_backups.py")], env)
            volume = json.loads(
                subprocess.run(
                    [str(BIN / "stack-status"), STACK, "--json"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )["outputs"]["volume_id"]
            banner("stack-delete: the backup volume is kept")
            show([str(BIN / "stack-delete"), STACK], env)
            banner("stack-start --restore-volume: a new server on the kept volume")
            show(
                [
                    str(BIN / "stack-start"),
                    f"{STACK}-restored",
                    *launch,
                    "--restore-volume",
                    volume,
                ],
                env,
            )
            show([str(BIN / "stack-delete"), f"{STACK}-restored"], env)
    print("\ndemo finished: every service it started has been stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
