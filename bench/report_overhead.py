"""What `mplint verify --report` adds to a verify run of the examples (issue 13: <= 5%).

Each round runs, for each example, `mplint verify --steps N EXAMPLE` and the same with `--report`
(recording the report's details and writing the page), in alternating order, each in a fresh
process (wall clock, interpreter start-up included). The figure is the median over rounds of
(with report / without), per example. Run:

    python bench/report_overhead.py --rounds 5 --steps 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = (
    ("train_fp16.py",),  # fp16 autocast without a scaler: the underflow measurement runs too
    ("train_clean.py", "--precision", "fp16"),  # with a GradScaler: the scale per step is kept
    ("rl_finetune.py",),  # a bf16 policy
)


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if completed.returncode not in (0, 1):
        sys.exit(f"report_overhead: {' '.join(argv)} exited {completed.returncode}:\n{completed.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        report = os.path.join(scratch, "report.html")
        print("| example | verify (median s) | verify --report (median s) | ratio (median of rounds) | report size |")
        print("|---|---:|---:|---:|---:|")
        for script, *script_args in EXAMPLES:
            base = [sys.executable, "-m", "mplint", "verify", "--steps", str(args.steps), f"examples/{script}"]
            tail = ["--", *script_args] if script_args else []
            plain, with_report = [], []
            for round_number in range(args.rounds):
                runs = [(plain, base + tail), (with_report, [*base, "--report", report, *tail])]
                for times, argv in runs if round_number % 2 == 0 else reversed(runs):
                    times.append(timed(argv))
            ratio = statistics.median(with_report_s / plain_s for plain_s, with_report_s in zip(plain, with_report))
            name = " ".join([script, *script_args])
            print(
                f"| {name} | {statistics.median(plain):.2f} | {statistics.median(with_report):.2f} | {ratio:.3f}x "
                f"| {os.path.getsize(report) / 1024:.0f} KiB |"
            )


if __name__ == "__main__":
    main()
