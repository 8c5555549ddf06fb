"""Run mplint over every labelled set and score each run, as a user runs it: `mplint .` at the root
of a folder holding the set's checkouts.

    python bench/realcode/run_sets.py /work/realcode OUT [PYTHON]

Each set `bench/realcode/NAME.json` is checked out under /work/realcode/NAME (`checkout.py`; its
repositories must have been fetched), run with PYTHON (default: this interpreter; another one,
a virtual environment over an older checkout of mplint, gives the baseline to diff against), and
scored (`score.py`). The findings of each set are kept as OUT/NAME.json, the scores as OUT/NAME.txt;
the set's ALL line is printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(checkouts: str, out: str, python: str = sys.executable) -> int:
    Path(out).mkdir(parents=True, exist_ok=True)
    for labels in sorted(HERE.glob("*.json")):
        name = labels.stem
        folder = Path(checkouts) / name
        subprocess.run([sys.executable, str(HERE / "checkout.py"), str(labels), str(folder)], check=True)
        findings = Path(out) / f"{name}.json"
        with findings.open("w") as sink:
            run = subprocess.run(
                [python, "-m", "mplint", "--no-cache", "-q", "--format", "json", "."], cwd=folder, stdout=sink
            )
        if run.returncode not in (0, 1):
            print(f"{name}: mplint exited {run.returncode}")
            continue
        score = subprocess.run(
            [sys.executable, str(HERE / "score.py"), str(findings), str(labels)], capture_output=True, text=True
        ).stdout
        (Path(out) / f"{name}.txt").write_text(score)
        print(name, next(line for line in score.splitlines() if line.startswith("ALL:")))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
