"""The progress line of a long check: counts the files checked on a terminal's stderr, only once the
run has taken a second, and leaves no trace behind; nothing at all where stderr is not a terminal."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from mplint import api
from mplint.progress import ProgressLine
from tests.test_cli import mplint
from tests.training_project import TRAINING_PROJECT


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_starts_after_the_delay_is_throttled_and_is_erased() -> None:
    stream, clock = io.StringIO(), Clock()
    line = ProgressLine(stream, delay=1.0, interval=0.1, clock=clock)
    line.update("early")
    assert stream.getvalue() == ""  # a run that ends within the delay prints nothing
    clock.now += 1.0
    line.update("1/3 files")
    line.update("2/3 files")  # within the interval: skipped
    clock.now += 0.1
    line.update("3/3")  # shorter than the last: padded over it
    assert stream.getvalue() == "\r1/3 files\r3/3      "
    line.close()
    assert stream.getvalue().endswith("\r   \r")
    assert line.elapsed == pytest.approx(1.1)


def test_a_line_never_shown_is_not_erased() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream, clock=Clock())
    line.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("cache", [False, True])
def test_a_check_tells_its_progress_file_by_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable, cache: bool
) -> None:
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, TRAINING_PROJECT)
    told: list[tuple[int, int]] = []
    api.lint_paths(["pkg"], cache=cache, progress=lambda done, total: told.append((done, total)))
    assert told == [(done, 6) for done in range(1, 7)]


def test_nothing_is_shown_where_stderr_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable
) -> None:
    write_files(tmp_path, TRAINING_PROJECT)
    assert mplint("--no-cache", "pkg", cwd=tmp_path).stderr == "Found 4 findings in 3 files.\n"
