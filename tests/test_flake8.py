"""The flake8 entry point: `flake8 --select MP` reports what mplint reports on the same file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_cli import mplint

pytest.importorskip("flake8")

CONFIG_FREE = ("--isolated",)  # the user's own flake8 config must not change the result


def flake8(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flake8", *CONFIG_FREE, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_flake8_reports_mplint_findings_at_the_same_places(tmp_path: Path, uncast_log_softmax: str) -> None:
    (tmp_path / "train.py").write_text(uncast_log_softmax)
    (tmp_path / "clean.py").write_text("import torch\nmodel = torch.nn.Linear(4, 4)\n")
    reported = flake8("--select", "MP", ".", cwd=tmp_path)
    linted = mplint("--no-cache", "--format", "github", ".", cwd=tmp_path)
    assert reported.returncode == 1, reported.stderr
    (line,) = reported.stdout.splitlines()
    assert line.startswith("./train.py:4:8: MP001 log_softmax on bfloat16 logits")
    assert "file=train.py,line=4,col=8," in linted.stdout


def test_flake8_honours_noqa_and_passes_a_clean_file(tmp_path: Path, uncast_log_softmax: str) -> None:
    silenced = uncast_log_softmax.replace("dim=-1)\n", "dim=-1)  # noqa: MP001\n")
    (tmp_path / "train.py").write_text(silenced)
    reported = flake8("--select", "MP", "train.py", cwd=tmp_path)
    assert (reported.returncode, reported.stdout) == (0, "")


def test_the_plugin_is_registered_with_flake8(tmp_path: Path) -> None:
    versions = flake8("--version", cwd=tmp_path).stdout
    assert "mplint:" in versions
