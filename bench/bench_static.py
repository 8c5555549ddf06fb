"""Time the static linter against TorchFix 0.7.0 on the `torch/nn` sources of the installed torch.

Each figure is the median of several runs of a fresh process (wall clock, including
interpreter start-up), except the parse floors, which time a parser over every file in this
process: `ast.parse` (mplint's screen before libcst) and `libcst.parse_module` (what mplint,
TorchFix and Fixit parse with). A cold single-process run of mplint has the libcst floor as its
target: analysing a tree may cost no more than libcst parsing all of it.

    python bench/bench_static.py                  # 5 runs each, TorchFix once, a markdown table
    python bench/bench_static.py --json out.json  # the same figures, also as JSON

TorchFix lives in its own virtualenv (created on first use) so that its pinned libcst and
flake8 never meet this project's.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Optional

TORCHFIX_VERSION = "0.7.0"
MPLINT = (sys.executable, "-m", "mplint")
# Seconds; from the static-core issue.
# Issue 10: `--version` <= 0.1 s; a cold single-process run <= 1.0x libcst parsing every file (set below).
TARGETS = {"mplint --version": 0.1}


@dataclass(frozen=True)
class Measurement:
    name: str
    command: str
    runs: int
    median_s: float
    min_s: float
    target_s: Optional[float]


class BenchError(Exception):
    """A step that cannot be timed (a command failed): one line for the user."""


def installed_torch_nn() -> Path:
    # find_spec locates the package without importing it (importing torch takes seconds).
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("torch is not installed; pass --target DIR to time another tree")
    return Path(spec.submodule_search_locations[0]) / "nn"


def python_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.py"))


def run_checked(
    argv: list[str], ok_codes: tuple[int, ...] = (0,), cwd: Optional[Path] = None
) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    if result.returncode not in ok_codes:
        last_line = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [
            "no output"
        ]
        raise BenchError(f"`{' '.join(argv)}` exited {result.returncode}: {last_line[0]}")
    return result.stdout


def ensure_torchfix(venv: Path) -> Path:
    """The torchfix executable of `venv`, creating the venv and installing TorchFix if needed."""
    executable = venv / "bin" / "torchfix"
    if not executable.exists():
        print(f"creating {venv} with torchfix=={TORCHFIX_VERSION} (once)...", file=sys.stderr)
        run_checked([sys.executable, "-m", "venv", str(venv)])
        run_checked(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                f"torchfix=={TORCHFIX_VERSION}",
            ]
        )
    version = run_checked([str(executable), "--version"]).strip()
    if TORCHFIX_VERSION not in version:
        raise BenchError(f"{executable} is TorchFix {version!r}, expected {TORCHFIX_VERSION}")
    return executable


def mplint_single_process_cold(target: Path) -> list[str]:
    """`mplint TARGET`, with the options that make it one process and uncached where they exist."""
    help_text = run_checked([*MPLINT, "--help"]) + run_checked(
        [*MPLINT, "check", "--help"], ok_codes=(0, 1, 2)
    )
    argv = [*MPLINT, str(target)]
    if "--no-cache" in help_text:
        argv.append("--no-cache")
    if "--jobs" in help_text:
        argv += ["--jobs", "1"]
    return argv


def median_of(name: str, command: str, runs: int, run_once: Callable[[], object]) -> Measurement:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        run_once()
        seconds.append(time.perf_counter() - start)
    return Measurement(
        name, command, runs, statistics.median(seconds), min(seconds), TARGETS.get(name)
    )


def time_command(name: str, argv: list[str], runs: int, ok_codes: tuple[int, ...]) -> Measurement:
    # Linters exit 1 when they report something; that is a successful run here.
    return median_of(name, " ".join(argv), runs, lambda: run_checked(argv, ok_codes))


def time_parse_floors(files: list[Path], runs: int) -> list[Measurement]:
    """`ast.parse` of every file; `libcst.parse_module` too where libcst is installed."""
    sources = [path.read_bytes() for path in files]

    def ast_parse_all() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's own SyntaxWarnings
            for source in sources:
                ast.parse(source)

    libcst = importlib.import_module("libcst")  # a dependency of mplint: always there
    return [
        median_of("ast.parse floor", "ast.parse(path.read_bytes()) per file", runs, ast_parse_all),
        median_of(
            "libcst.parse_module floor (the target of a cold run)",
            "libcst.parse_module(path.read_bytes()) per file",
            runs,
            lambda: [libcst.parse_module(source) for source in sources],
        ),
    ]


def target_cell(measurement: Measurement) -> str:
    if measurement.target_s is None:
        return ""
    verdict = "met" if measurement.median_s <= measurement.target_s else "MISSED"
    return f"≤ {measurement.target_s:g} ({verdict})"


def markdown_table(measurements: list[Measurement]) -> str:
    rows = [
        "| measurement | runs | median (s) | min (s) | target (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    for m in measurements:
        rows.append(
            f"| {m.name} | {m.runs} | {m.median_s:.3f} | {m.min_s:.3f} | {target_cell(m)} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--torchfix-runs", type=int, default=1, help="TorchFix takes ~40 s a run (default 1)"
    )
    parser.add_argument(
        "--torchfix-venv", type=Path, default=Path(__file__).parent / ".venv-torchfix"
    )
    parser.add_argument(
        "--skip-torchfix", action="store_true", help="time mplint and the parse floors only"
    )
    parser.add_argument(
        "--target", type=Path, help="source tree to lint (default: torch/nn of the installed torch)"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()

    try:
        target = args.target or installed_torch_nn()
        files = python_files(target)
        if not files:
            raise BenchError(f"no Python files under {target}")
        lines = sum(len(path.read_bytes().splitlines()) for path in files)
        print(f"{target}: {len(files)} files, {lines} lines", file=sys.stderr)

        measurements = [
            time_command("mplint --version", [*MPLINT, "--version"], args.runs, ok_codes=(0,)),
            time_command(
                "mplint cold, 1 process",
                mplint_single_process_cold(target),
                args.runs,
                ok_codes=(0, 1),
            ),
        ]
        if not args.skip_torchfix:
            torchfix = ensure_torchfix(args.torchfix_venv)
            argv = [str(torchfix), "-j1", str(target)]
            measurements.append(
                time_command("TorchFix 0.7.0 -j1", argv, args.torchfix_runs, ok_codes=(0, 1))
            )
        floors = time_parse_floors(files, args.runs)
        measurements.extend(floors)
        libcst_floor = next(m for m in floors if m.name.startswith("libcst"))
        measurements[1] = replace(measurements[1], target_s=round(libcst_floor.median_s, 3))
    except BenchError as error:
        print(f"bench_static: {error}", file=sys.stderr)
        return 2

    print(markdown_table(measurements))
    if args.json:
        report = {
            "target": str(target),
            "files": len(files),
            "lines": lines,
            "measurements": [asdict(m) for m in measurements],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
