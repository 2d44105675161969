"""Run the backup benchmarks and write bench/RESULTS.md and bench/results.json.

    python bench/run.py [--scale 1.0] [--repeat 3] [--cases a,b] [--out bench] [--keep]

Everything (dataset, targets, GNUPGHOME, sshd) lives in one temp dir that is removed at the
end, also on Ctrl-C or SIGTERM; the gpg-agent of that GNUPGHOME is killed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cases import Case, Context, selected
from bench.dataset import Dataset, generate
from bench.measure import SECRET_FD, measure
from bench.report import (
    CaseResult,
    RunInfo,
    display_command,
    machine_facts,
    summarize,
    write_results,
)

REPO = Path(__file__).resolve().parent.parent
REFERENCE = "tar-gpg"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _summary(error: Exception) -> str:
    """First line of an error's message (its type if it has none), for the results table."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _default_duplicity() -> str:
    """duplicity beside this Python, else the project's venv, else on PATH."""
    for candidate in (Path(sys.executable).parent / "duplicity", REPO / ".venv/bin/duplicity"):
        if candidate.exists():
            return str(candidate)
    return shutil.which("duplicity") or "duplicity"


def _sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _start_gpg_agent(home: Path) -> None:
    """Start the agent and make gpg's first-use files, so no case pays for them (~1 s)."""
    home.mkdir(mode=0o700)
    subprocess.run(["gpgconf", "--homedir", str(home), "--launch", "gpg-agent"], check=True)
    warm_up = ("--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase-fd", "0")
    subprocess.run(
        ["gpg", "--homedir", str(home), *warm_up, "-o", str(home / "w.gpg"), "-c", "/dev/null"],
        input=b"warm-up\n",
        check=True,
        capture_output=True,
    )


def _stop_gpg_agent(home: Path) -> None:
    for args in (["--kill", "all"], ["--remove-socketdir"]):
        subprocess.run(["gpgconf", "--homedir", str(home), *args], check=False, capture_output=True)


def run_cases(
    cases: Sequence[Case],
    contexts: Sequence[Context],
    repeat: int,
    interval: float,
    replacements: dict[str, str],
    loads: list[float],
) -> list[CaseResult]:
    """Set every case up, measure them in interleaved rounds, tear all down.

    `loads` gets the 1-minute load average at the start of each round.
    """
    results = [CaseResult(c.name, c.title, c.baseline) for c in cases]
    try:
        for case, ctx, result in zip(cases, contexts, results, strict=True):
            _log(f"setup {case.name}")
            ctx.workdir.mkdir(parents=True)
            started = time.perf_counter()
            try:
                case.setup(ctx)
            except Exception as e:  # a broken case must not stop the others
                result.error = f"setup: {_summary(e)}"
                _log(f"  {case.name} setup FAILED: {e}")
            result.setup_s = time.perf_counter() - started
        for i in range(repeat):
            loads.append(os.getloadavg()[0])
            for case, ctx, result in zip(cases, contexts, results, strict=True):
                if result.error or (case.repeats is not None and i >= case.repeats):
                    continue
                shutil.rmtree(ctx.repeat_dir(i), ignore_errors=True)
                ctx.repeat_dir(i).mkdir()
                try:
                    command = case.run(ctx, i)
                    if not result.command:
                        repl = {**replacements, str(ctx.workdir): "$WORK", SECRET_FD: "{fd}"}
                        result.command = display_command(command.argv, repl)
                    sample = measure(command, ctx.repeat_dir(i) / "run.log", interval=interval)
                    output = case.output_bytes(ctx, i)  # may check what the run made
                except Exception as e:  # CommandFailed or a broken case: report, go on
                    result.error = _summary(e)
                    _log(f"  {case.name} FAILED: {e}")
                    continue
                result.samples.append(sample)
                result.outputs.append(output)
                shutil.rmtree(ctx.repeat_dir(i))
                os.sync()
                _log(
                    f"round {i + 1}/{repeat} {case.name}: {sample.wall_s:.2f} s wall, "
                    f"{sample.cpu_s:.2f} s CPU, {sample.peak_tree_kb / 1024:.0f} MiB peak"
                )
        for case, ctx, result in zip(cases, contexts, results, strict=True):
            result.source_bytes = case.source_bytes(ctx)
            result.runs_s = case.inner_runs()
            if result.samples and not result.error:
                case.summarize(ctx, result.samples, result.outputs)
    finally:
        for case, ctx in zip(cases, contexts, strict=True):
            try:
                case.teardown(ctx)
            except Exception as e:  # one broken teardown must not leave the others running
                _log(f"teardown {case.name} failed: {e}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; exits non-zero if any case failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="dataset scale (1.0: ~400 MB)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--out", type=Path, default=REPO / "bench", help="where results go")
    parser.add_argument("--tmp", type=Path, help="parent of the temp dir (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (debugging)")
    parser.add_argument("--sample-interval", type=float, default=0.05, metavar="S")
    parser.add_argument("--duplicity", default=_default_duplicity())
    parser.add_argument(
        "--many-files",
        type=int,
        default=1_000_000,
        metavar="N",
        help="files of the many-files host (default 1,000,000)",
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the report's notes (repeatable)"
    )
    args = parser.parse_args(argv)

    try:
        case_types = selected(args.cases.split(",") if args.cases else None)
    except KeyError as e:
        parser.error(str(e.args[0]))
    if args.list:
        for c in case_types:
            print(f"{c.name:24} {c.title}")
        return 0
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")

    signal.signal(signal.SIGTERM, _sigterm)
    load_start = os.getloadavg()[0]
    round_loads: list[float] = []
    started_run = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="dupstack-bench-", dir=args.tmp))
    gnupghome = tmp / "gnupg"
    try:
        _start_gpg_agent(gnupghome)
        _log(f"generating dataset (scale {args.scale}) in {tmp}")
        started = time.perf_counter()
        dataset: Dataset = generate(tmp / "data", scale=args.scale, seed=args.seed)
        generate_s = time.perf_counter() - started
        _log(f"  {dataset.files} files, {dataset.bytes / 1e6:.1f} MB in {generate_s:.1f} s")
        passphrase = secrets.token_hex(32)  # like a dupstack per-host passphrase
        cases = [c() for c in case_types]
        contexts = [
            Context(
                dataset,
                tmp / "cases" / c.name,
                gnupghome,
                passphrase,
                args.duplicity,
                many_files=args.many_files,
            )
            for c in cases
        ]
        results = run_cases(
            cases,
            contexts,
            args.repeat,
            args.sample_interval,
            {str(dataset.root): "$DATA"},
            round_loads,
        )
    finally:
        _stop_gpg_agent(gnupghome)
        if args.keep:
            _log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    summarize(results, REFERENCE)
    mutation = next((ctx.notes["mutation"] for ctx in contexts if "mutation" in ctx.notes), None)
    info = RunInfo(
        command=shlex.join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        repeat=args.repeat,
        sample_interval=args.sample_interval,
        load_start=load_start,
        load_end=os.getloadavg()[0],
        generate_s=generate_s,
        mutation=mutation,
        round_loads=round_loads,
        duration_s=time.perf_counter() - started_run,
        notes=[
            *args.note,
            *(
                f"`{c.name}` {k}: {v}"
                for c, x in zip(cases, contexts, strict=True)
                for k, v in x.notes.items()
                if k != "mutation"
            ),
        ],
    )
    md, js = write_results(
        args.out,
        results=results,
        machine=machine_facts(args.duplicity, REPO),
        dataset=dataset,
        info=info,
        reference=REFERENCE,
    )
    _log(f"wrote {md} and {js}")
    print(md.read_text().split("## Results", 1)[1].split("## How", 1)[0].strip())
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
