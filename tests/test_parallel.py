"""`-j N`: units checked in a process pool give exactly what one process gives, in the same order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mplint.api import settings_for
from mplint.errors import InternalError
from mplint.registry import all_rules
from mplint.run import engine, parallel
from mplint.run.discovery import discover
from mplint.text import SourceFile
from tests.test_cli import mplint
from tests.training_project import EXPECTED, TRAINING_PROJECT


def sources(root: Path) -> list[SourceFile]:
    return discover([root / "pkg"], settings_for(root, None, None, None))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_files(tmp_path, TRAINING_PROJECT)


@pytest.fixture(autouse=True)
def pool_for_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start a pool for any work, as for a large run (the tests' projects are small)."""
    monkeypatch.setattr(parallel, "_FEWEST_FOR_WORKERS", 2)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_pool_finds_what_one_process_finds(project: Path, start_method: str) -> None:
    files = sources(project)
    rules = all_rules()
    expected = engine.lint_files(files, rules)
    found = parallel.lint_files(files, rules, jobs=2, start_method=start_method)
    assert found == expected
    assert [(f.path, f.line, f.code) for f in found] == EXPECTED


def test_more_jobs_than_work_runs_in_this_process(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("one work item needs no pool")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    files = [source for source in sources(project) if source.path == "pkg/amp.py"]
    found = parallel.lint_files(files, all_rules(), jobs=8)
    assert [(f.path, f.code) for f in found] == [("pkg/amp.py", "MP002")]


def test_a_few_items_are_checked_in_this_process(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # What an edit leaves to re-analyse: starting workers would cost more than checking it here.
    monkeypatch.setattr(parallel, "_FEWEST_FOR_WORKERS", 7)

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("6 work items need no pool")

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", no_pool)
    found = parallel.lint_files(sources(project), all_rules(), jobs=2)
    assert [(f.path, f.line, f.code) for f in found] == EXPECTED


def test_a_rule_failing_in_a_worker_is_an_internal_error_naming_the_file(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(self: engine.Run, root: str) -> engine.UnitResult:
        raise InternalError(root, "a rule failed", ValueError("boom"))

    monkeypatch.setattr(engine.Run, "lint_unit", failing)  # forked workers inherit the patch
    with pytest.raises(InternalError, match=r"a rule failed while checking pkg/\w+\.py: ValueError: boom"):
        parallel.lint_files(sources(project), all_rules(), jobs=2, start_method="fork")


def test_cli_output_is_identical_whatever_the_number_of_jobs(project: Path) -> None:
    one = mplint("--no-cache", "-j", "1", "pkg", cwd=project)
    two = mplint("--no-cache", "-j", "2", "pkg", cwd=project)
    assert one.returncode == two.returncode == 1
    assert two.stdout == one.stdout
    assert two.stderr == one.stderr == "Found 4 findings in 3 files.\n"


def test_jobs_must_be_a_positive_number(project: Path) -> None:
    completed = mplint("-j", "0", "pkg", cwd=project)
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr


def test_fix_through_a_pool_fixes_what_one_process_fixes(project: Path) -> None:
    from mplint import api

    one = api.fix_paths(["pkg"], unsafe=True, write=False, jobs=1)
    pooled = api.fix_paths(["pkg"], unsafe=True, write=False, jobs=2)

    assert pooled == one
    assert [change.path for change in pooled.changes] == ["pkg/train.py"]
