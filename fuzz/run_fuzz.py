"""Fuzz mplint for a while: `python fuzz/run_fuzz.py --minutes 10` from the repository root.

Runs the properties of `fuzz/inputs.py` (lint never raises, the CLI exits 0 or 1, fixes parse
and settle) over hypothesmith programs and mutated training code, batch after batch with fresh
seeds, until the time is up. Each failure is shrunk by hypothesis and saved, with its
traceback, under `fuzz/crashes/`; the run goes on. Prints the number of programs tried.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from fuzz.inputs import (
    Program,
    check_cli,
    check_program,
    generated_programs,
    mutated_training_code,
)

CRASHES = Path(__file__).resolve().parent / "crashes"
BATCH = 200


class Campaign:
    def __init__(self, check_cli_every: int) -> None:
        self.tried = 0
        self.crashes: dict[str, str] = {}
        self.check_cli_every = check_cli_every

    def check(self, program: Program) -> None:
        self.tried += 1
        check_program(program)
        if self.tried % self.check_cli_every == 0:
            check_cli(program)

    def batch(
        self, name: str, strategy: st.SearchStrategy[Program], batch_seed: int
    ) -> None:
        captured: list[Program] = []

        @seed(batch_seed)
        @settings(
            max_examples=BATCH,
            deadline=None,
            database=None,
            phases=[Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def run(program: Program) -> None:
            captured[:] = [program]
            self.check(program)

        try:
            run()
        except Exception as error:  # noqa: BLE001 - every failure is recorded, the run goes on
            self.record(name, captured[0] if captured else "", error)

    def record(self, name: str, program: Program, error: BaseException) -> None:
        data = (
            program
            if isinstance(program, bytes)
            else program.encode("utf-8", "surrogatepass")
        )
        key = hashlib.sha256(data).hexdigest()[:12]
        if key in self.crashes:
            return
        summary = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        self.crashes[key] = summary
        CRASHES.mkdir(exist_ok=True)
        (CRASHES / f"{name}-{key}.py").write_bytes(data)
        (CRASHES / f"{name}-{key}.txt").write_text(
            "".join(traceback.format_exception(error))
        )
        print(f"crash {name}-{key}: {summary}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to run")
    parser.add_argument(
        "--seed", type=int, default=0, help="first batch seed (runs replay)"
    )
    parser.add_argument(
        "--cli-every",
        type=int,
        default=10,
        help="also run the CLI on every Nth program",
    )
    options = parser.parse_args(argv)
    # hypothesmith compiles what it generates; CPython's warnings about it are noise here.
    warnings.simplefilter("ignore", SyntaxWarning)

    campaign = Campaign(options.cli_every)
    sources: list[tuple[str, Callable[[], st.SearchStrategy[Program]]]] = [
        ("mutated", mutated_training_code),
        ("generated", generated_programs),
    ]
    deadline = time.monotonic() + options.minutes * 60
    batch_seed = options.seed
    while time.monotonic() < deadline:
        for name, strategy in sources:
            campaign.batch(name, strategy(), batch_seed)
        batch_seed += 1
        print(
            f"{campaign.tried} programs tried, {len(campaign.crashes)} distinct crashes",
            flush=True,
        )
    print(
        f"done: {campaign.tried} programs tried in {options.minutes:g} minutes, {len(campaign.crashes)} crashes"
    )
    for key, summary in campaign.crashes.items():
        print(f"  {key}: {summary}")
    return 1 if campaign.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
