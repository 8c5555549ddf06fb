"""`mplint examples/` reports exactly what the examples say it reports, and the examples run.

Each example marks the lines it expects a finding on with a trailing `# expect: MPxxx`
comment, so the expectations live next to the code they are about.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
EXPECT_COMMENT = re.compile(r"#\s*expect:\s*(MP\d{3}(?:\s*,\s*MP\d{3})*)\s*$")
RUNNABLE_EXAMPLES = ("rl_finetune.py", "train_fp16.py", "train_clean.py")

Location = tuple[str, int, str]  # (path relative to the repository, line, code)


def expected_findings() -> set[Location]:
    expected = set()
    for path in sorted(EXAMPLES.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = EXPECT_COMMENT.search(line)
            if match:
                for code in match.group(1).split(","):
                    expected.add((path.relative_to(REPO).as_posix(), number, code.strip()))
    return expected


def mplint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mplint", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def reported_findings(output: str) -> set[Location]:
    return {
        ((REPO / item["path"]).resolve().relative_to(REPO).as_posix(), item["line"], item["code"])
        for item in json.loads(output)
    }


def test_each_buggy_example_marks_the_findings_it_shows() -> None:
    codes_by_file: dict[str, set[str]] = {}
    for path, _, code in expected_findings():
        codes_by_file.setdefault(path, set()).add(code)
    assert codes_by_file["examples/rl_finetune.py"] == {"MP001", "MP003"}
    assert codes_by_file["examples/train_fp16.py"] == {"MP002"}
    assert "examples/train_clean.py" not in codes_by_file


def test_mplint_examples_reports_exactly_the_marked_lines() -> None:
    result = mplint("examples/", "--format", "json")
    assert result.returncode == 1, result.stderr
    assert reported_findings(result.stdout) == expected_findings()


def test_text_output_names_each_finding_at_its_marked_line() -> None:
    result = mplint("examples/")
    assert result.returncode == 1, result.stderr
    reported = {
        (path, int(line), code)
        for path, line, code in re.findall(r"^(\S+?):(\d+):\d+: (MP\d{3}) ", result.stdout, re.M)
    }
    assert reported == expected_findings()


def test_clean_example_has_no_findings() -> None:
    result = mplint("examples/train_clean.py")
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("script", RUNNABLE_EXAMPLES)
def test_example_trains_two_steps_on_cpu(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--steps", "2"],
        cwd=REPO,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert re.findall(r"^step (\d+):", result.stdout, re.M) == ["0", "1"]


def test_the_readme_shows_what_its_first_command_prints() -> None:
    """README's first command (`mplint examples/`) and the output it shows, word for word."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"mplint examples/\n```\n\n```text\n(.*?)```", readme, re.DOTALL)
    assert shown is not None, "README no longer shows the output of `mplint examples/`"
    run = subprocess.run(
        [sys.executable, "-m", "mplint", "examples/"], cwd=REPO, capture_output=True, text=True, check=False
    )
    # The findings on stdout, the count on stderr: both on the terminal the README shows.
    assert (run.stdout + run.stderr).splitlines() == shown.group(1).splitlines()
