"""Run `mplint verify` as a user does: a subprocess, on a script in tests/runtime/scripts/real/."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
REAL = Path(__file__).parent / "scripts" / "real"


@dataclass(frozen=True)
class Run:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def findings(self, code: str) -> list[dict[str, Any]]:
        return [finding for finding in self.document["findings"] if finding["code"] == code]


def real_script(name: str) -> str:
    return str((REAL / name).relative_to(ROOT))


def line_of(name: str, marker: str) -> int:
    """The line of `name` that ends with the comment `# marker`."""
    lines = (REAL / name).read_text().splitlines()
    return next(number for number, text in enumerate(lines, 1) if text.rstrip().endswith(f"# {marker}"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mplint_verify(*args: str, timeout: float = 240) -> Run:
    """`python -m mplint verify ARGS` from the repository root, one thread per process."""
    return python("-m", "mplint", "verify", *args, timeout=timeout)


def python(*args: str, timeout: float = 240) -> Run:
    """`python ARGS` from the repository root, one thread per process."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )
    return Run(done.returncode, done.stdout, done.stderr)
