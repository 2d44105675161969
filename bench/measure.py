"""Run one command and measure its whole process tree: wall, CPU and memory.

- wall: `time.perf_counter()` from spawn to exit of the command's root process.
- CPU (user, sys): the root's `wait4()` rusage, which the kernel accumulates over the root and
  every descendant that was waited for (all of them, in a pipeline or a duplicity run).
  Daemons that detach (gpg-agent) are not included; the runner starts the agent beforehand.
- largest process RSS: `ru_maxrss` of the tree (GNU time's `%M`): the peak RSS of the single
  biggest process (exact, kernel-tracked), not a sum. The command runs under /usr/bin/time
  because a child forked from this Python process would inherit its RSS as a floor; without
  /usr/bin/time (Debian package `time`) this figure is left out.
- peak tree memory: the largest sum of PSS (`/proc/PID/smaps_rollup`; RSS where unreadable)
  over all live processes of the tree, sampled every `interval` seconds, so short spikes
  between samples can be missed. PSS splits shared pages, so the sum does not double count.
- `extra_roots`: PIDs of servers a case started (e.g. sshd). Their descendants are sampled for
  memory, and the CPU their reaped children used during the run is added (from the root's
  cutime/cstime) and reported separately as `server_cpu_s`. They are not the command's
  children, so `ru_maxrss` misses them: their peak RSS (`VmHWM`, kernel-tracked per process)
  is read at each sample, and the largest process figure is the larger of the two (a process
  that lives less than one interval, or grows after its last sample, can be missed).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SECRET_FD = "{secret_fd}"  # noqa: S105 - a placeholder, not a secret
"""Placeholder in a Command's argv for the number of the fd that carries `Command.secret`."""

TIME = "/usr/bin/time"
_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class CommandFailed(RuntimeError):
    """A measured (or setup) command exited non-zero; the message ends with its log's tail."""


@dataclass(frozen=True)
class Command:
    """One measured command: an argv (never a shell string) and what it gets.

    `secret` is written to a pipe whose read end the child inherits; argv refers to that fd
    through the `SECRET_FD` placeholder (e.g. `gpg --passphrase-fd {secret_fd}`), so a
    secret is never in argv. `env` is added to the runner's environment.
    """

    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    secret: bytes | None = None
    cwd: Path | None = None
    extra_roots: Sequence[int] = ()


@dataclass(frozen=True)
class Sample:
    """What one measured run used."""

    wall_s: float
    user_s: float
    sys_s: float
    server_cpu_s: float
    max_rss_kb: int | None
    peak_tree_kb: int
    samples: int
    root_cpu_s: tuple[float, ...] = ()  # CPU under each of `extra_roots`, in their order
    tree_max_rss_kb: int | None = None  # the command's own tree (GNU time), e.g. dupctl
    extra_hwm_kb: int = 0  # the largest VmHWM under the extra roots, e.g. a tenant's duplicity

    @property
    def cpu_s(self) -> float:
        """User + system CPU of the command's tree plus the servers' share."""
        return self.user_s + self.sys_s + self.server_cpu_s


def _ppid_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split(None, 2)[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(roots: Sequence[int], children: Mapping[int, list[int]]) -> list[int]:
    found: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        kids = children.get(pid, [])
        found.extend(kids)
        todo.extend(kids)
    return found


def _memory_kb(pid: int) -> int:
    """PSS of `pid` in KiB (RSS if smaps_rollup is unreadable); 0 if it has exited."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE // 1024
    except OSError:
        return 0


def _hwm_kb(pid: int) -> int:
    """Peak RSS (`VmHWM`) of `pid` in KiB so far; 0 if it has exited."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int, *, children: bool) -> int:
    """utime+stime of `pid` (with children=True: cutime+cstime of its reaped children)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rfind(b")") + 2 :].split()
    # fields[11..14] are utime, stime, cutime, cstime (stat fields 14-17).
    return int(fields[13]) + int(fields[14]) if children else int(fields[11]) + int(fields[12])


class _TreeSampler(threading.Thread):
    """Samples the summed memory of a process tree until stopped."""

    def __init__(self, root: int, extra_roots: Sequence[int], interval: float) -> None:
        super().__init__(daemon=True)
        self._root = root
        self._extra = tuple(extra_roots)
        self._interval = interval
        self._stop_event = threading.Event()
        self.peak_kb = 0
        self.extra_hwm_kb = 0  # the largest VmHWM seen among the extra roots' descendants
        self.samples = 0

    def run(self) -> None:
        while True:
            children = _ppid_map()
            extra = _descendants(self._extra, children)
            tree = [self._root, *_descendants((self._root,), children), *extra]
            self.peak_kb = max(self.peak_kb, sum(_memory_kb(pid) for pid in set(tree)))
            self.extra_hwm_kb = max(self.extra_hwm_kb, *map(_hwm_kb, extra), 0)
            self.samples += 1
            if self._stop_event.wait(self._interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _wait_for_no_children(roots: Sequence[int], timeout: float = 10.0) -> None:
    """Wait until servers have reaped the children the run started, so cutime is complete."""
    deadline = time.monotonic() + timeout
    while _descendants(roots, _ppid_map()) and time.monotonic() < deadline:
        time.sleep(0.02)


def _log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _read_maxrss(path: Path) -> int | None:
    """GNU time's %M (KiB) from its output file; None if there is none."""
    try:
        return int(path.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def measure(command: Command, log: Path, *, interval: float = 0.05) -> Sample:
    """Run `command` (output to `log`) and return what its tree used; raise CommandFailed."""
    env = {**os.environ, **command.env}
    read_fd: int | None = None
    argv = list(command.argv)
    if command.secret is not None:
        read_fd, write_fd = os.pipe()
        os.write(write_fd, command.secret)  # small: fits in the pipe buffer
        os.close(write_fd)
        argv = [a.replace(SECRET_FD, str(read_fd)) for a in argv]
    rss_file = log.with_suffix(".maxrss")
    if os.path.exists(TIME):
        argv = [TIME, "-q", "-o", str(rss_file), "-f", "%M", *argv]
    before = [_cpu_ticks(pid, children=True) for pid in command.extra_roots]
    with open(log, "wb") as out:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=command.cwd,
                pass_fds=(read_fd,) if read_fd is not None else (),
                start_new_session=True,  # its own process group: an interrupt stops it all
            )
        finally:
            if read_fd is not None:
                os.close(read_fd)
        sampler = _TreeSampler(proc.pid, command.extra_roots, interval)
        sampler.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
            raise
        finally:
            wall = time.perf_counter() - started
            sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise CommandFailed(
            f"{shlex.join(argv)} exited {proc.returncode} (log {log}):\n{_log_tail(log)}"
        )
    _wait_for_no_children(command.extra_roots)
    after = [_cpu_ticks(pid, children=True) for pid in command.extra_roots]
    per_root = tuple((a - b) / _TICK for a, b in zip(after, before, strict=True))
    tree_rss = _read_maxrss(rss_file)
    return Sample(
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        server_cpu_s=sum(per_root),
        max_rss_kb=_largest(tree_rss, sampler.extra_hwm_kb),
        peak_tree_kb=sampler.peak_kb,
        samples=sampler.samples,
        root_cpu_s=per_root,
        tree_max_rss_kb=tree_rss,
        extra_hwm_kb=sampler.extra_hwm_kb,
    )


def _largest(maxrss_kb: int | None, extra_hwm_kb: int) -> int | None:
    if maxrss_kb is None:
        return extra_hwm_kb or None
    return max(maxrss_kb, extra_hwm_kb)


def run_checked(command: Command, log: Path) -> None:
    """Run an unmeasured helper command (e.g. a case's setup) and raise CommandFailed on error."""
    measure(command, log, interval=1.0)
