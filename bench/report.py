"""Summaries of measured samples and the two result files: RESULTS.md and results.json."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.dataset import Dataset
from bench.measure import Sample

MB = 1_000_000


@dataclass
class CaseResult:
    """Everything measured for one case, with its summary once `summarize()` ran."""

    name: str
    title: str
    baseline: str | None
    command: str = ""
    samples: list[Sample] = field(default_factory=list)
    outputs: list[int | None] = field(default_factory=list)
    setup_s: float = 0.0
    error: str | None = None
    summary: dict[str, float] = field(default_factory=dict)
    vs_baseline: float | None = None
    vs_reference: float | None = None
    source_bytes: int | None = None  # what the case reads, when not the dataset
    runs_s: list[float] = field(default_factory=list)  # each run's wall (Case.inner_runs)


@dataclass(frozen=True)
class RunInfo:
    """How and when this run was made."""

    command: str
    date: str
    repeat: int
    sample_interval: float
    load_start: float
    load_end: float
    generate_s: float
    mutation: Mapping[str, int] | None = None
    round_loads: Sequence[float] = ()  # 1-minute load average at the start of each round
    duration_s: float | None = None  # the whole run: dataset, set-ups, rounds, tear-downs
    notes: Sequence[str] = ()


def summarize(results: Sequence[CaseResult], reference: str) -> None:
    """Fill each result's summary (medians, wall min/max) and its ratios of median wall time."""
    for r in results:
        if not r.samples:
            continue
        s = r.samples
        outputs = [o for o in r.outputs if o is not None]
        r.summary = {
            "wall_s": statistics.median(x.wall_s for x in s),
            "wall_min_s": min(x.wall_s for x in s),
            "wall_max_s": max(x.wall_s for x in s),
            "cpu_s": statistics.median(x.cpu_s for x in s),
            "user_s": statistics.median(x.user_s for x in s),
            "sys_s": statistics.median(x.sys_s for x in s),
            "server_cpu_s": statistics.median(x.server_cpu_s for x in s),
            "peak_tree_mb": statistics.median(x.peak_tree_kb for x in s) * 1024 / MB,
        }
        rss = [x.max_rss_kb for x in s if x.max_rss_kb is not None]
        if rss:
            r.summary["max_rss_mb"] = statistics.median(rss) * 1024 / MB
        if r.runs_s:
            r.summary["run_s"] = statistics.median(r.runs_s)
        if outputs:
            r.summary["output_mb"] = statistics.median(outputs) / MB
            r.summary["output_mb_s"] = r.summary["output_mb"] / r.summary["wall_s"]
    walls = {r.name: r.summary["wall_s"] for r in results if r.summary}
    for r in results:
        if not r.summary:
            continue
        if r.baseline in walls:
            r.vs_baseline = r.summary["wall_s"] / walls[r.baseline]
        if reference in walls:
            r.vs_reference = r.summary["wall_s"] / walls[reference]


def _first_line(argv: Sequence[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[0] if lines else "n/a"


def _cpuinfo_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _git_commit(repo: Path) -> str:
    head = _first_line(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"{head} (with uncommitted changes)" if dirty else head


def _interpreter(script: str) -> str:
    """The Python that runs a console script (its #! line), else this one."""
    try:
        with open(script, "rb") as f:
            first = f.readline().decode(errors="replace")
    except OSError:
        return sys.executable
    return first[2:].strip() if first.startswith("#!") else sys.executable


def machine_facts(duplicity: str, repo: Path) -> dict[str, object]:
    """Facts that make numbers comparable: hardware, kernel, tool versions, commit."""
    probe = (
        "import platform, importlib.metadata as m\n"
        "print(platform.python_version(), m.version('paramiko'))"
    )
    versions = _first_line([_interpreter(duplicity), "-c", probe]).split()
    python, paramiko = versions if len(versions) == 2 else ("n/a", "n/a")
    mem_kb = 0
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    except (OSError, StopIteration):
        pass
    return {
        "cpu": _cpuinfo_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": python,
        "duplicity": _first_line([duplicity, "--version"]),
        "gpg": _first_line(["gpg", "--version"]),
        "tar": _first_line(["tar", "--version"]),
        "gzip": _first_line(["gzip", "--version"]),
        "openssh": _first_line(["ssh", "-V"]),
        "paramiko": paramiko,
        "commit": _git_commit(repo),
    }


def _fmt(value: float | None, spec: str = ".1f", suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _table(results: Sequence[CaseResult], dataset_mb: float, reference: str) -> list[str]:
    def source_mb(result: CaseResult) -> float:
        return dataset_mb if result.source_bytes is None else result.source_bytes / MB

    lines = [
        f"| case | wall s (median) | min-max | CPU s | peak tree MB | largest process MB "
        f"| output MB | output MB/s | source MB/s | vs baseline | x {reference} |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|",
    ]
    for r in results:
        if r.error or not r.summary:
            lines.append(f"| `{r.name}` | failed: {r.error or 'no samples'} ||||||||||")
            continue
        s = r.summary
        cpu = _fmt(s["cpu_s"])
        if s["server_cpu_s"] > 0:
            cpu += f" (under sshd {s['server_cpu_s']:.1f})"
        baseline = f"{r.vs_baseline:.2f}x {r.baseline}" if r.vs_baseline is not None else "-"
        title = r.title.replace("|", "\\|")
        lines.append(
            f"| `{r.name}`: {title} | {s['wall_s']:.2f} "
            f"| {s['wall_min_s']:.2f}-{s['wall_max_s']:.2f} | {cpu} "
            f"| {s['peak_tree_mb']:.0f} | {_fmt(s.get('max_rss_mb'), '.0f')} "
            f"| {_fmt(s.get('output_mb'))} | {_fmt(s.get('output_mb_s'))} "
            f"| {source_mb(r) / s['wall_s']:.1f} | {baseline} "
            f"| {_fmt(r.vs_reference, '.2f', 'x')} |"
        )
    return lines


# Issue 13's targets: (what, case, against, at most, the floor's case and its baseline, why
# the floor is where it is). A target missed shows the floor measured in the same run.
TARGETS = (
    ("a full <= 1.4x `tar \\| gpg`", "dupctl-backup-1", "tar-gpg", 1.4,
     ("duplicity-tenant-sftp-full", "tar-gpg"),
     "duplicity itself: an rdiff signature of every file, a tar per volume, gpg as a process of "
     "its own (`duplicity-full` to file:// is already ~1.3x), then SFTP through paramiko's "
     "pure-Python transport, both ends on the same 2 cores"),
    ("dupctl <= 1.03x the same duplicity run", "dupctl-backup-1", "duplicity-tenant-sftp-full",
     1.03, None,
     "not duplicity's: dupctl's fixed cost per run (start-up, SSH session, preflight, the "
     "metadata record, screening, the fsync of the set), bench/README.md: where it goes"),
    ("dupctl <= 1.03x the same duplicity run, on an incremental", "dupctl-incremental-1",
     "duplicity-tenant-incremental", 1.03, None,
     "a short run, where the fixed cost shows: the fixed-cost rows below, in seconds"),
    ("an incremental (0.5% changed) <= 0.3x a full", "dupctl-incremental-1", "dupctl-backup-1",
     0.3, ("duplicity-tenant-incremental", "duplicity-tenant-sftp-full"),
     "duplicity reads every file's metadata and the full's signatures whatever changed; "
     "dupctl's fixed cost is a larger share of a short run"),
    ("a one-file restore from 30 increments <= 2x from a lone full",
     "restore-one-file-chain30", "restore-one-file-full", 2.0, None,
     "linear in the chain: each increment is one more gpg and volume scan (bench/README.md: "
     "the floor); dupstack's weekly fulls keep chains at 7 or fewer"),
    ("dupctl restore of one file against the same duplicity restore", "dupctl-restore-one",
     "duplicity-restore-one", None, None, "no target: what dupctl adds (landing, record)"),
)  # fmt: skip


# dupctl's fixed cost, in seconds, from the medians per run of bench/fixedcost.py's cases:
# dupctl on one host, dupctl on two hosts in turn (one process), the same duplicity directly.
FIXED_COST = ("dupctl-fixed-1", "dupctl-fixed-2", "duplicity-fixed")
FIXED_LIMIT = 0.2
FIXED_ROWS = (
    (f"dupctl's fixed cost per run <= {FIXED_LIMIT} s",
     "a process per run that logs in to the host: the next two rows (bench/README.md: where "
     "it goes)"),
    ("of it, paid again by each host of a run",
     "the SSH login and the host's sshd setting up its first session, the preflight, the "
     "metadata record and its removal (a python3 on the host), screening, sealing, status"),
    ("of it, paid once by each dupctl process",
     "Python, paramiko and cryptography, the command line's parser and the inventory's loader "
     "(yaml, croniter), before the first byte to a host"),
)  # fmt: skip


def _targets(results: Sequence[CaseResult]) -> list[str]:
    """The TARGETS table: each ratio of this run's medians, met or not, and the floor; then
    the fixed cost and its two parts, differences of medians per run."""
    walls = {r.name: r.summary["wall_s"] for r in results if r.summary and not r.error}
    ratio = lambda a, b: walls[a] / walls[b] if a in walls and b in walls else None  # noqa: E731
    lines = ["| target | measured | floor (duplicity alone) | why |", "|---|--:|--:|---|"]
    for what, case, against, limit, floor, why in TARGETS:
        measured = ratio(case, against)
        if measured is None:
            continue
        verdict = "" if limit is None else " (met)" if measured <= limit else " (missed)"
        low = ratio(*floor) if floor else None
        lines.append(
            f"| {what} | {measured:.2f}x{verdict} | "
            f"{f'{low:.2f}x `{floor[0]}`' if floor and low else '-'} | {why} |"
        )
    runs = {r.name: r.summary["run_s"] for r in results if "run_s" in r.summary and not r.error}
    if all(name in runs for name in FIXED_COST):
        one, two, raw = (runs[name] for name in FIXED_COST)
        per_host = two - one - raw
        costs = (one - raw, per_host, one - raw - per_host)
        for (what, why), cost in zip(FIXED_ROWS, costs, strict=True):
            if cost < 0:  # noise larger than the difference: never reported as met
                shown = f"{cost:.2f} s (not measured: below this run's noise)"
            elif what == FIXED_ROWS[0][0]:
                shown = f"{cost:.2f} s ({'met' if cost <= FIXED_LIMIT else 'missed'})"
            else:
                shown = f"{cost:.2f} s"
            lines.append(f"| {what} | {shown} | - | {why} |")
    return lines


HOW_MEASURED = """\
- Each case ran {repeat} time(s); repeats were interleaved (round 1 of every case, then
  round 2, ...) so a noisy neighbour hurts all cases alike. Medians; wall min-max shown.
- **wall**: `time.perf_counter()` from spawning the command to its exit. Only the command is
  timed: fresh target dirs, copies, the incremental's full backup, the offsite cases' set
  and their new bucket for each repeat are untimed set-up.
- **CPU**: user+system seconds of the whole process tree from the root's `wait4()` rusage
  (the kernel adds every reaped descendant: tar, gzip, gpg, duplicity's gpg children). For
  `sftp`, `tenant` and `dupctl` cases what ran under an sshd listener the case started
  (session processes it reaped, with their reaped descendants) is added and shown as
  "under sshd": the SFTP sessions on the receiving side and, for `dupctl` cases, the tenant's
  whole SSH session: duplicity and its gpg. gpg-agent, a detached daemon, is started before
  the runs (the runner's, and one per tenant host) and not counted, nor is the S3 server of
  the offsite cases (moto, a process of its own): only the uploading side is measured.
- **peak tree MB**: the largest sum of PSS (`/proc/PID/smaps_rollup`) over the live processes
  of the tree and the descendants of those sshd listeners (not the listeners themselves),
  sampled every {interval} s: what the backup occupied at once. Spikes shorter than the
  interval can be missed. Page cache and tmpfs files (a tenant's /tmp, where duplicity
  builds each volume before sending it) are no process's PSS and are not counted.
- **largest process MB**: the peak RSS of the single biggest process, not a sum: `ru_maxrss`
  of the tree as `/usr/bin/time -f %M` reports it (exact, kernel-tracked; GNU time is the
  tree's root because a child forked from the Python runner inherits the runner's RSS), or,
  if larger, the largest `VmHWM` sampled among the sshd listeners' descendants (for `dupctl`
  cases: the tenant's duplicity, which is not in the command's tree).
- **output MB**: size of what the repeat wrote (for the incremental: only the new files; for
  the offsite cases: the objects in the bucket). **output MB/s**: output MB / median wall
  (for the offsite cases: the upload's throughput). **source MB/s**: dataset size / median
  wall (the incremental reads metadata of all files but the data of changed ones only).
- The dataset is in the page cache (written just before); outputs go to the page cache too
  and are flushed (`sync`) between runs, untimed. Both ends of `sftp` and of the offsite
  cases (S3 on 127.0.0.1) run on this machine.
- No figure here is asserted anywhere: benchmarks are not tests."""


def write_results(
    out_dir: Path,
    *,
    results: Sequence[CaseResult],
    machine: Mapping[str, object],
    dataset: Dataset,
    info: RunInfo,
    reference: str,
) -> tuple[Path, Path]:
    """Write RESULTS.md and results.json into `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {
        "machine": dict(machine),
        "dataset": {k: v for k, v in asdict(dataset).items() if k != "root"},
        "run": asdict(info),
        "reference": reference,
        "cases": [
            {
                **{k: v for k, v in asdict(r).items() if k not in ("samples", "outputs")},
                "samples": [
                    {**asdict(s), "cpu_s": s.cpu_s, "output_bytes": o}
                    for s, o in zip(r.samples, r.outputs, strict=True)
                ],
            }
            for r in results
        ],
    }
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")

    ds = dataset
    dataset_mb = ds.bytes / MB
    targets = _targets(results)
    lines = [
        "# dupstack backup benchmark",
        "",
        f"`{info.command}` on {info.date}. One machine, one run; ratios compare medians",
        "of the same run. `make bench` regenerates this file and `results.json`.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable) |",
        f"| memory | {machine['memory_gib']} GiB |",
        f"| OS, kernel | {machine['os']}, {machine['kernel']} |",
        f"| load average (1 min) at start / end | {info.load_start:.2f} / {info.load_end:.2f} |",
        *(
            [f"| load average (1 min) at each round's start | {loads} |"]
            if (loads := ", ".join(f"{x:.2f}" for x in info.round_loads))
            else []
        ),
        *([f"| whole run | {info.duration_s:.0f} s |"] if info.duration_s is not None else []),
        f"| duplicity | {machine['duplicity']} (Python {machine['python']}, "
        f"paramiko {machine['paramiko']}) |",
        f"| gpg | {machine['gpg']} |",
        f"| tar, gzip | {machine['tar']}; {machine['gzip']} |",
        f"| OpenSSH | {machine['openssh']} |",
        f"| dupstack commit | {machine['commit']} |",
        "",
        "## Dataset",
        "",
        f"`bench/dataset.py`, seed {ds.seed}, scale {ds.scale}: **{ds.files} files, "
        f"{dataset_mb:.1f} MB**: {ds.small_files} small files (1-16 KiB, 80% text) "
        f"{ds.small_bytes / MB:.1f} MB, random blobs {ds.blob_bytes / MB:.1f} MB, "
        f"logs {ds.log_bytes / MB:.1f} MB; generated in {info.generate_s:.1f} s.",
    ]
    if info.mutation:
        m = info.mutation
        lines += [
            f"The incremental follows `mutate(seed=1)`: {m['files']} files changed "
            f"({m['small_files']} small files rewritten, one log appended, a slice of one "
            f"blob rewritten), {m['changed_bytes'] / MB:.2f} MB of data.",
        ]
    lines += [
        "",
        f"## Results (median of {info.repeat})",
        "",
        *_table(results, dataset_mb, reference),
        "",
        *(["## Targets (issue 13)", "", *targets, ""] if len(targets) > 2 else []),
        *(["## Notes", "", *[f"- {note}" for note in info.notes], ""] if info.notes else []),
        "## How it was measured",
        "",
        HOW_MEASURED.format(repeat=info.repeat, interval=info.sample_interval),
        "",
        "## Commands",
        "",
        "`$DATA` is the dataset, `$WORK` the case's scratch dir, `{fd}` an inherited pipe",
        "carrying the passphrase; duplicity gets it as `PASSPHRASE` in its environment.",
        "`nsenter -t PID` enters a fleet host (PID: its keeper); each tenant's copy of the",
        "dataset is at `/home/bench`.",
        "",
        *[f"- `{r.name}`: `{r.command}`" for r in results],
        "",
    ]
    md_path = out_dir / "RESULTS.md"
    md_path.write_text("\n".join(lines))
    return md_path, json_path


def display_command(argv: Sequence[str], replacements: Mapping[str, str]) -> str:
    """argv as a shell line, with long temp paths replaced by short names ($DATA, $WORK)."""
    text = shlex.join(argv)
    for old, new in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    return text


def rewrite(json_path: Path) -> Path:
    """RESULTS.md again from `json_path` (a run's results.json), beside it: the same figures
    with this version of the report (new sections, fixed wording), nothing run again."""
    data = json.loads(json_path.read_text())
    results = []
    for case in data["cases"]:
        samples = case.pop("samples")
        result = CaseResult(**case)
        for sample in samples:
            result.outputs.append(sample.pop("output_bytes"))
            sample.pop("cpu_s")
            sample["root_cpu_s"] = tuple(sample.get("root_cpu_s", ()))
            result.samples.append(Sample(**sample))
        results.append(result)
    md, _ = write_results(
        json_path.parent,
        results=results,
        machine=data["machine"],
        dataset=Dataset(root=Path("."), **data["dataset"]),
        info=RunInfo(**data["run"]),
        reference=data["reference"],
    )
    return md


if __name__ == "__main__":  # python -m bench.report bench/results.json
    print(rewrite(Path(sys.argv[1])))
