"""Run mplint on each file as a pre-commit hook names it, and compare with `mplint .` over the set.

    python bench/realcode/named_files.py SETS_OUT CHECKOUTS [PYTHON] [SET ...]

For every file where a set run (`run_sets.py`, its `SETS_OUT/NAME.json`) reported an MP001-MP003,
`PYTHON -m mplint --no-cache FILE` runs from the root of the file's checkout under
`CHECKOUTS/NAME/`; the findings located in that file are compared with the set run's. Prints one
line per file (set, path, findings of the set run, of them found again, others, seconds) and the
totals. A checkout needs a marker of a repository's root (`mplint/repository.py`) for its files to be
checked with their project, as in a git clone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

CODES = ("MP001", "MP002", "MP003")


def main(sets_out: str, checkouts: str, python: str = sys.executable, *names: str) -> int:
    chosen = names or sorted(path.stem for path in Path(sets_out).glob("*.json"))
    wanted = found_again = extra = 0
    seconds = 0.0
    for name in chosen:
        by_file: dict[str, set[tuple[int, str]]] = defaultdict(set)
        for finding in json.loads(Path(sets_out, f"{name}.json").read_text()):
            if finding["code"] in CODES:
                by_file[finding["path"]].add((finding["line"], finding["code"]))
        for path, expected in sorted(by_file.items()):
            checkout, relative = path.split("/", 1)
            start = time.perf_counter()
            run = subprocess.run(
                [python, "-m", "mplint", "--no-cache", "-q", "--format", "json", relative],
                cwd=Path(checkouts, name, checkout),
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - start
            got = {
                (finding["line"], finding["code"])
                for finding in json.loads(run.stdout or "[]")
                if finding["path"] == relative and finding["code"] in CODES
            }
            wanted += len(expected)
            found_again += len(expected & got)
            extra += len(got - expected)
            seconds += elapsed
            print(name, path, len(expected), len(expected & got), len(got - expected), f"{elapsed:.1f}", flush=True)
    print(f"TOTAL {wanted} findings, {found_again} found again, {extra} others, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
