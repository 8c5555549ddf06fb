"""Time repeat runs (the cache) and parallel cold runs on the installed torch's sources.

Each figure is the median of several fresh `python -m mplint` processes (wall clock, including
interpreter start-up), run from a scratch directory so that the cache (`.mplint_cache/` at the
working directory, torch having no mplint config) never lands inside site-packages.

    python bench/bench_cache.py                   # torch/nn warm, torch/ cold -j2, warm, one file edited
    python bench/bench_cache.py --runs 3 --skip-full --json out.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from bench_static import (
    MPLINT,
    BenchError,
    Measurement,
    installed_torch_nn,
    markdown_table,
    median_of,
    python_files,
    run_checked,
)

# Seconds; from the "where users meet mplint" issue.
# Issue 10's targets.
TARGETS = {
    "torch/nn warm": 0.3,
    "torch/ cold, -j2": 30.0,
    "torch/ warm, -j2": 0.5,
    "torch/ one file edited, -j2": 2.0,
}
# The file edited: imported by much of torch/, so its edit re-analyses many units (a bad case).
EDITED = "nn/functional.py"


def timed(name: str, target: Path, scratch: Path, runs: int, jobs: int, cold: bool) -> Measurement:
    argv = [*MPLINT, "--quiet", "--jobs", str(jobs), str(target)]

    def run_once() -> None:
        if cold:
            shutil.rmtree(scratch / ".mplint_cache", ignore_errors=True)
        run_checked(argv, ok_codes=(0, 1), cwd=scratch)

    if not cold:
        run_checked(argv, ok_codes=(0, 1), cwd=scratch)  # fill the cache first
    measured = median_of(name, f"(cd {scratch} && {' '.join(argv)})", runs, run_once)
    return Measurement(**{**asdict(measured), "target_s": TARGETS.get(name)})


def timed_edits(target: Path, scratch: Path, runs: int, jobs: int) -> Measurement:
    """Each run after a new comment at the end of `EDITED` (the cache filled before the first)."""
    argv = [*MPLINT, "--quiet", "--jobs", str(jobs), str(target)]
    run_checked(argv, ok_codes=(0, 1), cwd=scratch)
    edited = target / EDITED
    original = edited.read_text(encoding="utf-8")
    edits = iter(range(runs))

    def run_once() -> None:
        edited.write_text(f"{original}# edit {next(edits)}\n", encoding="utf-8")
        run_checked(argv, ok_codes=(0, 1), cwd=scratch)

    name = "torch/ one file edited, -j2"
    measured = median_of(name, f"(edit {EDITED}; cd {scratch} && {' '.join(argv)})", runs, run_once)
    return Measurement(**{**asdict(measured), "target_s": TARGETS[name]})


def copy_of_sources(source: Path, destination: Path) -> Path:
    """A copy of the Python files under `source` (a tree the bench may edit)."""
    shutil.copytree(
        source,
        destination,
        ignore=lambda folder, names: [
            name for name in names if not name.endswith(".py") and not (Path(folder) / name).is_dir()
        ],
    )
    return destination


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument("--full-runs", type=int, default=3, help="runs of the cold torch/ measurement")
    parser.add_argument("--skip-full", action="store_true", help="time torch/nn only")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    try:
        nn = installed_torch_nn()
        measurements = []
        with tempfile.TemporaryDirectory(prefix="mplint-bench-") as directory:
            scratch = Path(directory)
            measurements.append(timed("torch/nn warm", nn, scratch, args.runs, jobs=2, cold=False))
            measurements.append(timed("torch/nn cold, -j2", nn, scratch, args.runs, jobs=2, cold=True))
            if not args.skip_full:
                torch = copy_of_sources(nn.parent, scratch / "torch")
                print(f"{nn.parent}: {len(python_files(torch))} files (copied)", file=sys.stderr)
                measurements.append(timed("torch/ cold, -j2", torch, scratch, args.full_runs, jobs=2, cold=True))
                measurements.append(timed("torch/ warm, -j2", torch, scratch, args.runs, jobs=2, cold=False))
                measurements.append(timed_edits(torch, scratch, args.runs, jobs=2))
    except BenchError as error:
        print(f"bench_cache: {error}", file=sys.stderr)
        return 2

    print(markdown_table(measurements))
    if args.json:
        args.json.write_text(json.dumps([asdict(m) for m in measurements], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
