"""Demo: the backup server backs up two tenant hosts and restores an earlier version.

Each host is a network namespace with its own mount namespace and a real sshd (the test
fleet, fleet/); the backup server has a loop device as its volume. Real
duplicity, real gpg, real SFTP; everything is removed at the end.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fleet import Fleet, Host  # noqa: E402
from fleet.backup import backup_server, tenant, write_tree  # noqa: E402


def banner(text: str) -> None:
    print(f"\n\033[1m=== {text}\033[0m", flush=True)


def show(host: Host, *argv: str) -> str:
    """Run a command on `host` as an operator would, echoing it and its output."""
    print(f"{host.name}# {shlex.join(argv)}", flush=True)
    done = host.run(list(argv), input="", check=False)
    print(done.stdout, end="", flush=True)
    print(done.stderr, end="", file=sys.stderr, flush=True)
    if done.returncode != 0:
        raise SystemExit(f"demo: {argv[0]} exited {done.returncode}")
    return done.stdout


def main() -> int:
    with Fleet() as fleet:
        banner("a backup server (dupctl init on its volume) and two tenant hosts with sshd")
        bs = backup_server(fleet)
        web1 = tenant(fleet, bs, "web1", "/opt/app")
        web2 = tenant(fleet, bs, "web2", "/opt/app")
        for host in (web1, web2):
            write_tree(host.path("/opt/app"))
        show(bs, "dupctl", "host", "list")

        banner("cron backs up each host daily at its own time (host add scheduled them)")
        show(bs, "dupctl", "schedule", "show")

        banner("cron's catch-up: neither host has a backup yet, so both count as missed")
        show(bs, "dupctl", "backup", "--missed")
        show(bs, "dupctl", "status")
        full_time = str(int(time.time()))
        time.sleep(1.1)  # duplicity's times have one-second resolution

        banner("web1's config changes; an incremental backup")
        config = web1.path("/opt/app/config.txt")
        print(f"web1# echo 'version 2' > {config.name}")
        config.write_text("version 2\n")
        show(bs, "dupctl", "backup", "web1")
        show(bs, "dupctl", "status", "web1")

        banner("restore the earlier version of one file, as of the full backup")
        show(bs, "dupctl", "list", "web1", "--time", full_time)
        show(bs, "dupctl", "restore", "web1", "--path", "/opt/app/config.txt",
             "--time", full_time, "--to", "/root/restored")  # fmt: skip
        show(bs, "cat", "/root/restored/opt/app/config.txt")
        show(web1, "cat", "/opt/app/config.txt")
    print("\nbackup demo finished: hosts, namespaces and the volume are gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
