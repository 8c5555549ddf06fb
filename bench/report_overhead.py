"""What `mplint verify --report` adds to a verify run of the examples (issue 13: <= 5%).

Each round runs, for each example, `mplint verify --steps N EXAMPLE` and the same with `--report`
(recording the report's details and writing the page) back to back, each in a fresh process
(interpreter and torch start-up included), alternating which of the two goes first. A shared,
loaded machine makes single runs vary by far more than 5%, so each round's pair gives one ratio
(both runs saw about the same load), and the figures are over rounds:
- wall clock: the median of the rounds' ratios, and the ratio of the fastest runs (min / min);
- CPU time (user + system of the process and its children): the same two. CPU time does not count
  the time a process waited for a core, so it is the steadier figure when other jobs share them.
A warm-up pair per example (not counted) loads torch's files into the page cache. torch runs one
intra-op thread (`--threads`): on a shared machine its thread pool spin-waits for cores that other
jobs hold, which multiplied these small examples' wall and CPU time by up to ~10x from one run to the
next. Run:

    python bench/report_overhead.py --rounds 5 --steps 20

`--in-process` runs each verify in this process instead (as the tests do), once torch is imported:
interpreter and torch start-up (most of a fresh run of these small examples) leave the denominator,
so the ratio is the stricter one, and many rounds take little time.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = (
    ("train_fp16.py",),  # fp16 autocast without a scaler: the underflow measurement runs too
    ("train_clean.py", "--precision", "fp16"),  # with a GradScaler: the scale per step is kept
    ("rl_finetune.py",),  # a bf16 policy
)


@dataclass(frozen=True)
class Timing:
    wall: float  # seconds
    cpu: float  # user + system seconds of the process and of the processes it waited for


_environment = dict(os.environ)  # the fresh processes' environment (`--threads`)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(verify_args: list[str]) -> Timing:
    """`mplint verify ARGS` in a fresh process."""
    argv = [sys.executable, "-m", "mplint", "verify", *verify_args]
    cpu_before, started = _children_cpu(), time.perf_counter()
    completed = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=_environment)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if completed.returncode not in (0, 1):
        sys.exit(f"report_overhead: {' '.join(argv)} exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    return Timing(wall, cpu)


def timed_in_process(verify_args: list[str]) -> Timing:
    """`mplint verify ARGS` in this process."""
    from click.testing import CliRunner

    from mplint.runtime.command import verify

    cpu_before, started = time.process_time(), time.perf_counter()
    result = CliRunner().invoke(verify, verify_args)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_before
    if result.exit_code not in (0, 1):
        sys.exit(f"report_overhead: verify {' '.join(verify_args)} exited {result.exit_code}:\n{result.output[-2000:]}")
    return Timing(wall, cpu)


def ratios(plain: list[float], with_report: list[float]) -> str:
    """`median of paired ratios / ratio of the minima`, e.g. `1.012x / 0.998x`."""
    paired = statistics.median(report_s / plain_s for plain_s, report_s in zip(plain, with_report, strict=True))
    return f"{paired:.3f}x / {min(with_report) / min(plain):.3f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--in-process", action="store_true", help="run each verify in this process")
    parser.add_argument("--threads", type=int, default=1, help="torch's intra-op threads; 0: torch's default")
    args = parser.parse_args()
    run = timed
    if args.threads:
        _environment.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.in_process:
        os.chdir(REPO)
        sys.path.insert(0, str(REPO))  # this tree's mplint, as `python -m mplint` from REPO runs
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        run = timed_in_process
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"load average before: {load}; {os.cpu_count()} CPUs; torch threads: {args.threads or 'default'}")
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "report.html")
        print(
            "| example | verify wall s (median, min) | --report wall s (median, min) | wall ratio (median, min) "
            "| CPU s (median) | --report CPU s (median) | CPU ratio (median, min) | report size |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for script, *script_args in EXAMPLES:
            base = ["--steps", str(args.steps), f"examples/{script}"]
            tail = ["--", *script_args] if script_args else []
            runs = [base + tail, [*base, "--report", report, *tail]]
            for argv in runs:  # warm-up
                run(argv)
            plain: list[Timing] = []
            with_report: list[Timing] = []
            for round_number in range(args.rounds):
                order = [(plain, runs[0]), (with_report, runs[1])]
                for timings, argv in order if round_number % 2 == 0 else reversed(order):
                    timings.append(run(argv))
            name = " ".join([script, *script_args])
            walls = [timing.wall for timing in plain], [timing.wall for timing in with_report]
            cpus = [timing.cpu for timing in plain], [timing.cpu for timing in with_report]
            print(
                f"| {name} | {statistics.median(walls[0]):.2f}, {min(walls[0]):.2f} "
                f"| {statistics.median(walls[1]):.2f}, {min(walls[1]):.2f} | {ratios(*walls)} "
                f"| {statistics.median(cpus[0]):.2f} | {statistics.median(cpus[1]):.2f} | {ratios(*cpus)} "
                f"| {os.path.getsize(report) / 1024:.0f} KiB |"
            )
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
