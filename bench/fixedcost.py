"""Bench cases of dupctl's fixed cost per run, measured where nothing else hides it.

Three cases on a fleet of their own, each host holding a tiny dataset (FIXED_SCALE of the
bench's, whatever `--scale`) and one full made in set-up: an incremental with nothing changed
is almost nothing but the fixed cost. Each repeat runs its command RUNS times in a row (this
bench/inarow.py), each run timed alone and started in a later second than
the one before (duplicity names sets by whole seconds), so a round gives RUNS samples:

- `duplicity-fixed`: dupctl's tenant command run directly on `bench-fx4` (nsenter, the
  passphrase on stdin), as `duplicity-tenant-incremental` runs dupctl-incremental-1's;
- `dupctl-fixed-1`: `dupctl backup bench-fx1`;
- `dupctl-fixed-2`: `dupctl backup bench-fx2 bench-fx3 --jobs 1`: one process, two hosts.

From the medians per run (report.py): the fixed cost per run is dupctl-fixed-1 minus
duplicity-fixed; the part paid again by each host is dupctl-fixed-2 minus dupctl-fixed-1
minus duplicity-fixed; the rest is paid once per process. Every host gets RUNS incrementals
per round, so the chains the three cases read grow alike.
"""

from __future__ import annotations

import json
import shlex
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bench import inarow
from bench.cases import Context, _FleetCase, register
from bench.dataset import Dataset, generate
from bench.measure import SECRET_FD, Command, Sample
from bench.tenants import acquire

FIXED_SCALE = 0.01  # of the full dataset: ~300 small files, ~4 MB
RUNS = 5  # runs in a row per repeat
ONE = "bench-fx1"
PAIR = ("bench-fx2", "bench-fx3")
RAW = "bench-fx4"
_SMALL: dict[Path, Dataset] = {}


def _small_dataset(ctx: Context) -> Dataset:
    """The tiny dataset the fixed-cost hosts share, made once beside the cases' folders."""
    root = ctx.workdir.parent / "fixed-data"
    if root not in _SMALL:
        _SMALL[root] = generate(root, scale=FIXED_SCALE, seed=ctx.dataset.seed or 1)
    return _SMALL[root]


class _FixedCase(_FleetCase):
    fleet_key = "fixed"
    max_hosts = 4
    hosts: ClassVar[tuple[str, ...]] = (ONE,)
    runs: list[float]

    def setup(self, ctx: Context) -> None:
        self.runs = []
        self.bench = acquire(self.fleet_key, _small_dataset(ctx), self.max_hosts)
        for name in self.hosts:
            self.bench.tenant(name)
            self.bench.dupctl("backup", name, "--full")

    def argv(self) -> list[str]:
        """The command each run of a repeat runs (SECRET_FD for the passphrase's fd)."""
        return self.fleet().on_server(["dupctl", "backup", *self.hosts, "--jobs", "1"])

    def secret(self) -> bytes | None:
        return None

    def run(self, ctx: Context, repeat: int) -> Command:
        spec = {
            "argv": self.argv(),
            "runs": RUNS,
            "times": str(ctx.repeat_dir(repeat) / "runs.json"),
            "secret_fd": SECRET_FD if self.secret() else None,
        }
        return Command(
            [sys.executable, str(Path(inarow.__file__)), json.dumps(spec)],
            secret=self.secret(),
            extra_roots=self.fleet().roots(self.hosts),
        )

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        """The repeat's runs, each timed by the driver; raise unless there are RUNS."""
        times = json.loads((ctx.repeat_dir(repeat) / "runs.json").read_text())
        if len(times) != RUNS:
            raise RuntimeError(f"{len(times)} timed runs, not {RUNS}")
        self.runs.extend(times)
        return super().output_bytes(ctx, repeat)

    def inner_runs(self) -> list[float]:
        return list(self.runs)

    def summarize(
        self, ctx: Context, samples: Sequence[Sample], outputs: Sequence[int | None]
    ) -> None:
        ctx.notes["per run"] = (
            f"median {statistics.median(self.runs):.3f} s, {min(self.runs):.3f}-"
            f"{max(self.runs):.3f} s, of {len(self.runs)} runs ({RUNS} in a row per repeat); "
            f"the wall above is a repeat's {RUNS} runs and the waits for a new second between"
        )


@register
class DuplicityFixed(_FixedCase):
    """dupctl's tenant command for `bench-fx4`, run there directly (its folder left open for
    writes, as during a dupctl run: nothing seals these sets)."""

    name = "duplicity-fixed"
    title = f"duplicity incremental (nothing changed) on a tenant, directly, {RUNS} in a row"
    hosts = (RAW,)

    def setup(self, ctx: Context) -> None:
        super().setup(ctx)
        self.fleet().open_window(RAW)

    def argv(self) -> list[str]:
        bench = self.fleet()
        return bench.on_tenant(RAW, bench.tenant_argv(RAW, full=False), "{fd}")

    def secret(self) -> bytes | None:
        return self.fleet().passphrase(RAW).encode() + b"\n"


@register
class DupctlFixedOne(_FixedCase):
    """`dupctl backup bench-fx1`: one process, one host."""

    name = "dupctl-fixed-1"
    title = f"dupctl backup (nothing changed), one host, {RUNS} in a row"
    baseline = "duplicity-fixed"

    def output_bytes(self, ctx: Context, repeat: int) -> int | None:
        bench = self.fleet()
        expected = shlex.join(bench.duplicity_argv(ONE, full=False))  # duplicity-fixed's, for ONE
        if (ran := bench.last_remote_argv(ONE)) != expected:
            raise RuntimeError(f"dupctl ran {ran!r} on {ONE}, not {expected!r}")
        return super().output_bytes(ctx, repeat)


@register
class DupctlFixedTwo(_FixedCase):
    """`dupctl backup bench-fx2 bench-fx3 --jobs 1`: one process, two hosts in turn."""

    name = "dupctl-fixed-2"
    title = f"dupctl backup --jobs 1 (nothing changed), two hosts in turn, {RUNS} in a row"
    baseline = "dupctl-fixed-1"
    hosts = PAIR
