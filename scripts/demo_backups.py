"""Demo: the backup server backs up two tenant hosts and restores an earlier version, a
database dump, drills a restore, tells of a failure by mail, copies offsite and restores a
file from there through a thaw, and lets cron run a backup.

Each host is a network namespace with its own mount namespace and a real sshd (the test
fleet, fleet/); the backup server has a loop device as its volume. Real
duplicity, real gpg, real SFTP; everything is removed at the end.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import yaml  # noqa: E402
from moto.server import ThreadedMotoServer  # noqa: E402

from fleet import DIE_WITH_PARENT, HOST_ENV, Fleet, Host  # noqa: E402
from fleet.backup import backup_server, set_host_options, tenant, write_tree  # noqa: E402
from fleet.databases import Postgres  # noqa: E402
from fleet.receivers import Mailbox  # noqa: E402


def banner(text: str) -> None:
    print(f"\n\033[1m=== {text}\033[0m", flush=True)


def show(host: Host, *argv: str, expect: int = 0) -> str:
    """Run a command on `host` as an operator would, echoing it and its output."""
    print(f"{host.name}# {shlex.join(argv)}", flush=True)
    done = host.run(list(argv), input="", check=False)
    print(done.stdout, end="", flush=True)
    print(done.stderr, end="", file=sys.stderr, flush=True)
    if done.returncode != expect:
        raise SystemExit(f"demo: {argv[0]} exited {done.returncode}")
    return done.stdout


def show_quiet(host: Host, *argv: str) -> str:
    """`show` that echoes the command but not its output (the caller picks what to print)."""
    print(f"{host.name}# {shlex.join(argv)} | grep ...", flush=True)
    done = host.run(list(argv), input="", check=False)
    if done.returncode != 0:
        raise SystemExit(f"demo: {argv[0]} exited {done.returncode}: {done.stderr}")
    return done.stdout


def secret_file(host: Host, path: str, text: str) -> None:
    file = host.path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    file.chmod(0o600)


def databases(bs: Host, web2: Host) -> None:
    banner("web2 runs PostgreSQL: its shop database is dumped before each backup")
    pg = Postgres.start(web2)
    try:
        pg.sql("CREATE DATABASE shop")
        pg.sql("CREATE TABLE orders AS SELECT i AS id, 'item ' || i AS item "
               "FROM generate_series(1, 1000) i", "shop")  # fmt: skip
        print("bs# (inventory) hosts.web2.databases: [{type: postgresql, name: shop}]")
        set_host_options(bs, "web2", databases=[{"type": "postgresql", "name": "shop"}])
        show(bs, "dupctl", "backup", "web2")
        banner("someone deletes most orders on web2; the dump comes back as a new database")
        print("web2# psql shop -c 'DELETE FROM orders WHERE id > 10'")
        pg.sql("DELETE FROM orders WHERE id > 10", "shop")
        show(bs, "dupctl", "restore", "web2", "--database", "shop", "--into", "shop_restored")
        for name in ("shop", "shop_restored"):
            count = "SELECT count(*) FROM orders"
            print(f"web2# psql {name} -Atc '{count}'")
            print(pg.sql(count, name), end="")
    finally:
        pg.stop()
    set_host_options(bs, "web2", databases=[])


def notifications(bs: Host, web1: Host) -> None:
    banner("failures are told: apprise URLs in a root-only file (here: an SMTP server on bs)")
    mailbox = bs.call(Mailbox)
    bs.call(mailbox.start)
    try:
        secret_file(bs, "/etc/dupstack/notify.urls", mailbox.url + "\n")
        inventory = bs.path("/etc/duplicity/dupstack.yaml")
        section = "notifications: {urls_file: /etc/dupstack/notify.urls}"
        inventory.write_text(inventory.read_text() + section + "\n")
        print(f"bs# (inventory) {section}")
        check = ["sh", "-c", "echo 'app: not running' >&2; exit 3"]
        print(f"bs# (inventory) hosts.web1.hooks.before: [{check}]  (a check that fails)")
        set_host_options(bs, "web1", hooks={"before": [check]})
        show(bs, "dupctl", "backup", "web1", expect=13)
        for mail in mailbox.messages:
            print(f"(mail to {mail['to']}) Subject: {mail['subject']}")
            print("".join(f"    {line}\n" for line in mail.get_body().get_content().splitlines()))
    finally:
        mailbox.stop()
        set_host_options(bs, "web1", hooks={})


def offsite(bs: Host, web1: Host) -> None:
    banner("offsite: copies on S3 Deep Archive (here moto's S3 server inside bs)")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    bs.call(server.start)
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        api = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="demo", aws_secret_access_key="demo")  # noqa: S106  # fmt: skip
        bs.call(lambda: api.create_bucket(Bucket="acme-dr"))
        secret_file(bs, "/etc/dupstack/offsite/deep.ini",
                    "aws_access_key_id = demo\naws_secret_access_key = demo\n")  # fmt: skip
        target = {"type": "s3", "endpoint_url": endpoint, "region": "us-east-1",
                  "bucket": "acme-dr", "storage_class": "DEEP_ARCHIVE",
                  "credentials_file": "/etc/dupstack/offsite/deep.ini"}  # fmt: skip
        inventory = bs.path("/etc/duplicity/dupstack.yaml")
        document = yaml.safe_load(inventory.read_text())
        document["offsite"] = {"targets": {"deep": target}}
        inventory.write_text(yaml.safe_dump(document))
        print(
            "bs# (inventory) offsite: {targets: {deep: {type: s3, bucket: acme-dr, "
            "storage_class: DEEP_ARCHIVE, credentials_file: /etc/dupstack/offsite/deep.ini}}}"
        )
        show(bs, "dupctl", "offsite", "push")
        show(bs, "dupctl", "offsite", "status")
        show(bs, "dupctl", "offsite", "plan", "--files", "10000000", "--file-size", "1KiB",
             "--volsize", "1024", "--storage-class", "DEEP_ARCHIVE")  # fmt: skip
        banner("restore a file from the offsite copy: only the volumes it needs are thawed")
        show(bs, "dupctl", "restore", "web1", "--from", "deep", "--path",
             "/opt/app/config.txt", "--to", "/root/from-offsite", expect=18)  # fmt: skip
        show(bs, "dupctl", "restore", "web1", "--from", "deep", "--path",
             "/opt/app/config.txt", "--to", "/root/from-offsite", "--thaw", "bulk")  # fmt: skip
        show(bs, "cat", "/root/from-offsite/opt/app/config.txt")
    finally:
        bs.call(server.stop)


def scheduled_run(bs: Host) -> None:
    banner("cron itself runs a scheduled backup (web1 every minute here; daily by default)")
    set_host_options(bs, "web1", schedule={"backup": "* * * * *", "catch_up": False})
    show(bs, "dupctl", "schedule", "apply")
    for other in ("/etc/crontab", "/etc/cron.d/e2scrub_all", "/etc/cron.d/dupstack"):
        bs.path(other).unlink(missing_ok=True)  # only dupstack's jobs run in this host
    before = bs.run(["dupctl", "status", "web1", "--json"]).stdout
    print("bs# cron -f   (waiting for the next full minute)", flush=True)
    cron = subprocess.Popen(
        [*DIE_WITH_PARENT, *bs.keeper.nsenter(["cron", "-f"])],
        env=HOST_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 150
        while bs.run(["dupctl", "status", "web1", "--json"]).stdout == before:
            if time.monotonic() > deadline:
                raise SystemExit("demo: cron did not run web1's backup")
            time.sleep(2)
    finally:
        cron.kill()
        cron.wait()
    set_host_options(bs, "web1", schedule={})
    show(bs, "dupctl", "schedule", "apply")
    while bs.run(["pgrep", "-f", "dupctl backup web1"], check=False).returncode == 0:
        time.sleep(1)  # the run cron started ends first
    show(bs, "dupctl", "status", "web1")


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

        databases(bs, web2)

        banner("a restore drill: a sample of web1's latest set restored and compared")
        show(bs, "dupctl", "drill", "web1", "--sample-percent", "50")

        notifications(bs, web1)
        offsite(bs, web1)
        scheduled_run(bs)

        banner("metrics for Prometheus' textfile collector (rewritten after every run)")
        text = show_quiet(bs, "dupctl", "metrics", "--print")
        wanted = ("dupstack_last_run_success", "dupstack_sets", "dupstack_last_drill_success")
        print("".join(line + "\n" for line in text.splitlines() if line.startswith(wanted)))
    print("\nbackup demo finished: hosts, namespaces and the volume are gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
