"""A backup server and tenant hosts for the dupctl cases: the test fleet, loaded with the dataset.

    bench = acquire("fleet-a", ctx.dataset)   # shared by the cases that name the same key
    web1 = bench.tenant("web1")               # host added (paths: DATA), dataset copied in
    bench.reset("web1")                       # no sets on the server, no cache on the host
    Command(bench.on_server(["dupctl", "backup", "web1", "--full"]), ...)
    release("fleet-a")                        # the last user closes the fleet

The hosts are those of the tests (fleet/: the namespace hosts and fleet/backup.py):
network and mount namespaces on this machine, each with its own real sshd; the backup server
(`bs`, after `dupctl init`) has a loop-mounted ext4 volume at /mnt/vdb holding the chroots.
Every tenant holds its own copy of the dataset at DATA (an overlay: the copy lands in the
fleet's folder under /tmp, not in RAM). `Fleet.close()` kills every process in every host by
PID (gpg-agents included), lets the loop device go and removes the folder.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from agent.config.load import DUMP_SPOOL, load_inventory
from agent.duplicity.backup import backup_command
from agent.duplicity.common import STABLE_OUTPUT_ENV, Selection
from agent.host_passphrase import host_passphrase
from agent.paths import ServerPaths
from agent.remote import remote_command
from agent.repository import TENANT_ARCHIVE_DIR, tenant_repository
from bench.dataset import Dataset
from fleet import HOST_ENV, Fleet, Host
from fleet.backup import backup_server, ok, tenant

DATA = "/home/bench"  # each tenant's copy of the dataset: the one path of its selection
BACKUPS = "/mnt/vdb/hosts/dup-{}/backups"  # a host's sets on the server (inside its chroot)
MIB = 1024 * 1024
# What an ssh session of root gets, roughly; `env -i` first, so nothing of the runner leaks in.
SESSION_ENV = tuple(f"{k}={v}" for k, v in {**HOST_ENV, "USER": "root", "LOGNAME": "root"}.items())
# stdin from the inherited secret fd ($0), then the command as dupctl sends it to a tenant.
STDIN_FROM_FD = 'exec </proc/self/fd/"$0" && exec "$@"'


def _volume_bytes(dataset: Dataset, hosts: int) -> int:
    """The server's volume: room for one full of every host, twice over (fulls here are
    ~0.6x the dataset), and a floor for the tiny datasets of a smoke run. Sparse."""
    return max(256 * MIB, 2 * hosts * dataset.bytes + 256 * MIB) // MIB * MIB


class BenchFleet:
    """A backup server and tenants named on demand, each loaded with the dataset."""

    def __init__(self, dataset: Dataset, max_hosts: int = 2) -> None:
        self.dataset = dataset
        self.fleet = Fleet()
        self.tenants: dict[str, Host] = {}
        try:
            # Formatted here, like Fleet does for its 64 MB default, but sized for the dataset
            # and without lazy init: no kernel thread zeroing inode tables during the runs.
            image = self.fleet.dir / "vdb.img"
            self.volume_bytes = _volume_bytes(dataset, max_hosts)
            subprocess.run(["truncate", "-s", str(self.volume_bytes), str(image)], check=True)
            subprocess.run(["mkfs.ext4", "-q", "-L", "dupstack", "-m", "0",
                            "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)],
                           check=True)  # fmt: skip
            self.bs = backup_server(self.fleet)
        except BaseException:
            self.fleet.close()
            raise

    def tenant(self, name: str) -> Host:
        """Tenant `name`: added with DATA to back up, the dataset copied in, gpg warmed up."""
        if name in self.tenants:
            return self.tenants[name]
        host = tenant(self.fleet, self.bs, name, DATA)
        self.tenants[name] = host
        target = host.path(DATA)
        target.mkdir(parents=True)
        subprocess.run(["cp", "-a", f"{self.dataset.root}/.", str(target)], check=True)
        # gpg's first use makes /root/.gnupg and starts the host's gpg-agent (a daemon, as
        # the runner's own): no measured run pays for it, the first one no more than others.
        host.run(["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback",
                  "--passphrase-fd", "0", "-o", "/dev/null", "--yes", "-c", "/dev/null"],
                 input="warm-up\n")  # fmt: skip
        os.sync()  # the copy must not be written back during a measured run
        return host

    def backups(self, name: str) -> Path:
        """`name`'s sets on the server's volume, seen from outside the fleet."""
        return self.bs.path(BACKUPS.format(name))

    def cache(self, name: str) -> Path:
        """duplicity's cache (archive dir) for `name`'s repository, on the tenant."""
        return self.tenants[name].path(f"{TENANT_ARCHIVE_DIR}/dupstack-{name}")

    def reset(self, *names: str) -> None:
        """No sets of `names` on the server and no cache on the tenants: the next is a full."""
        for name in names:
            for entry in self.backups(name).iterdir():
                entry.unlink()
            shutil.rmtree(self.cache(name), ignore_errors=True)
        os.sync()

    def roots(self, names: Sequence[str]) -> tuple[int, ...]:
        """The sshd listeners whose children work in a backup of `names`: the server's (one
        SFTP session per host) and each tenant's (the session running duplicity)."""
        assert self.bs.sshd is not None
        pids = [self.bs.sshd.pid]
        for name in names:
            sshd = self.tenants[name].sshd
            assert sshd is not None
            pids.append(sshd.pid)
        return tuple(pids)

    def on_server(self, argv: Sequence[str]) -> list[str]:
        """argv to run `argv` on the server as root, in a clean environment, from /root."""
        return _inside(self.bs, argv)

    def passphrase(self, name: str) -> str:
        """`name`'s backup passphrase, as dupctl derives it from the stack secret."""
        return host_passphrase(self.bs.path("/etc/duplicity/passphrase").read_bytes(), name)

    def duplicity_argv(self, name: str, *, full: bool) -> tuple[str, ...]:
        """The duplicity command dupctl runs on tenant `name` (agent/actions/backup.py,
        `_run`): its repository there and its selection, the spool of dumps included."""
        inventory = load_inventory(ServerPaths.from_root(self.bs.path("/")))
        host = inventory.host(name)
        selection = Selection(host.paths, host.excludes, kept=(DUMP_SPOOL,))  # HostContext's
        return backup_command(
            tenant_repository(inventory, host),
            selection,
            full=full,
            full_if_older_than=None if full else host.full_if_older_than,
            volsize=host.volsize,
            retry_delay=None,
        )

    def tenant_argv(self, name: str, *, full: bool) -> tuple[str, ...]:
        """duplicity_argv as the host runs it: in the stable environment (UTC, English)."""
        stable = (f"{key}={value}" for key, value in STABLE_OUTPUT_ENV.items())
        return ("env", *stable, *self.duplicity_argv(name, full=full))

    def open_window(self, name: str) -> None:
        """The host's folder open for writes, as during one of dupctl's runs (agent/quota.py):
        between runs its account may not write there."""
        self.backups(name).chmod(0o1770)

    def on_tenant(self, name: str, argv: Sequence[str], secret_fd: str) -> list[str]:
        """argv to run `argv` directly on tenant `name` exactly as dupctl has its sshd run it
        (`sh -c 'read PASSPHRASE from stdin...' sh ARGV`), stdin being the fd `secret_fd`."""
        sent = shlex.split(remote_command(argv, "root", secret=True))
        return _inside(self.tenants[name], ["sh", "-c", STDIN_FROM_FD, secret_fd, *sent])

    def last_remote_argv(self, name: str) -> str:
        """From dupctl's newest log of `name`: the command line it ran on the tenant."""
        logs = sorted(self.bs.path(f"/var/log/dupstack/{name}").iterdir())
        marker = f"dupctl: on {name}: "
        lines = [line for line in logs[-1].read_text().splitlines() if line.startswith(marker)]
        return lines[-1].removeprefix(marker) if lines else ""

    def dupctl(self, *args: str) -> str:
        """Run dupctl on the server (unmeasured); its output; raise if it failed."""
        return ok(self.bs.run(["dupctl", *args], input="", check=False))

    def close(self) -> None:
        self.fleet.close()


def _inside(host: Host, argv: Sequence[str]) -> list[str]:
    return ["nsenter", "-t", str(host.keeper.pid), "-m", "-n", "--wd=/root", "--",
            "env", "-i", *SESSION_ENV, *argv]  # fmt: skip


_FLEETS: dict[str, BenchFleet] = {}
_USERS: dict[str, int] = {}


def acquire(key: str, dataset: Dataset, max_hosts: int = 2) -> BenchFleet:
    """The fleet called `key`, started by its first user; `release(key)` once per call."""
    if key not in _FLEETS:
        _FLEETS[key] = BenchFleet(dataset, max_hosts)
        _USERS[key] = 0
    _USERS[key] += 1
    return _FLEETS[key]


def release(key: str) -> None:
    """Drop one use of fleet `key`; the last one closes it."""
    _USERS[key] -= 1
    if _USERS[key] == 0:
        del _USERS[key]
        _FLEETS.pop(key).close()
