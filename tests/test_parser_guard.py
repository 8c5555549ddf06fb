"""Expressions nested a few thousand deep are past what CPython's parser builds (and what a
recursive walk follows): they are one MP000, never a crash. A native parser can overflow its
stack on such input (a segfault: no exception, no message), so these run in a subprocess: a
regression fails the test instead of killing pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "import torch\npolicy = torch.nn.Linear(2, 2).to(torch.bfloat16)\n"


@pytest.mark.parametrize(
    "expression",
    [
        pytest.param("x" + ".float()" * 8000, id="8000-call-chain"),
        pytest.param("(" * 4000 + "x" + ")" * 4000, id="4000-parentheses"),
        pytest.param("f(" * 3000 + "x" + ")" * 3000, id="3000-nested-calls"),
    ],
)
def test_expressions_nested_past_the_parser_are_mp000_not_a_crash(expression: str, tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text(HEADER + f"y = {expression}\n", encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "mplint", "deep.py", "--no-cache"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 1, result.stderr
    assert result.stdout.strip() == "deep.py:1:1: MP000 [invalid-syntax] cannot analyse: nested too deeply"
