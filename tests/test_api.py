"""The Python API: the same checks as the CLI, as values instead of output and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.api import LintResult, lint_paths, lint_source
from mplint.errors import ConfigError, MissingPathError


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def located(findings) -> list[tuple[str, int, str]]:
    return [(finding.path, finding.line, finding.code) for finding in findings]


def test_lint_paths_checks_every_file_under_the_paths(
    project, write_files, uncast_log_softmax
) -> None:
    write_files(project, {"rl/ppo.py": uncast_log_softmax, "rl/__init__.py": "", "notes.md": ""})

    result = lint_paths(["rl"])

    assert isinstance(result, LintResult)
    assert result.files_checked == 2
    assert located(result.findings) == [("rl/ppo.py", 4, "MP001")]


@pytest.mark.parametrize(
    ("select", "ignore", "reported"),
    [
        (None, None, True),
        ("MP001", None, True),
        (["MP002", "MP003"], None, False),
        ("MP002,MP001", None, True),
        (None, "MP0", False),
        ("ALL", ["MP001"], False),
    ],
)
def test_lint_source_selects_like_the_command_line(
    project, uncast_log_softmax, select, ignore, reported
) -> None:
    findings = lint_source(uncast_log_softmax, select=select, ignore=ignore)

    assert located(findings) == ([("<stdin>", 4, "MP001")] if reported else [])


def test_lint_source_applies_the_config_of_its_path(
    project, write_files, uncast_log_softmax
) -> None:
    write_files(
        project, {"pyproject.toml": '[tool.mplint.per-file-ignores]\n"eval/*" = ["MP001"]\n'}
    )

    assert lint_source(uncast_log_softmax, "eval/probe.py") == []
    assert located(lint_source(uncast_log_softmax, "train.py")) == [("train.py", 4, "MP001")]


def test_lint_source_decodes_bytes_like_files(project) -> None:
    [finding] = lint_source(b"x = 1\nname = 'caf\xe9'\n", "train.py")

    assert (finding.code, finding.name, finding.path) == ("MP000", "invalid-syntax", "train.py")
    assert "not valid UTF-8 (byte 0xe9" in finding.message


def test_invalid_syntax_is_reported_unless_ignored(project, write_files, unparsable) -> None:
    write_files(project, {"broken.py": unparsable})

    assert [finding.code for finding in lint_paths(["."]).findings] == ["MP000"]
    assert lint_paths(["."], ignore=["MP000"]) == LintResult(findings=(), files_checked=1)


def test_bad_input_raises_mplint_errors(project) -> None:
    with pytest.raises(MissingPathError):
        lint_paths(["trian.py"])
    with pytest.raises(ConfigError, match="^--select: unknown rule code or prefix 'E501'$"):
        lint_source("x = 1\n", select=["E501"])


@pytest.mark.parametrize("collecting", [True, False])
def test_a_run_leaves_the_garbage_collector_as_it_found_it(
    project, write_files, uncast_log_softmax, monkeypatch: pytest.MonkeyPatch, collecting: bool
) -> None:
    # The collector is paused while a run holds its trees (they are long-lived): never for good.
    import gc

    from mplint.run import engine

    write_files(project, {"train.py": uncast_log_softmax})
    seen: list[bool] = []
    lint_unit = engine.Run.lint_unit

    def observed(self: engine.Run, root: str) -> engine.UnitResult:
        seen.append(gc.isenabled())
        return lint_unit(self, root)

    monkeypatch.setattr(engine.Run, "lint_unit", observed)
    (gc.enable if collecting else gc.disable)()
    try:
        lint_paths(["."])
        assert (seen, gc.isenabled()) == ([False], collecting)

        def failing(self: engine.Run, root: str) -> engine.UnitResult:
            raise RuntimeError("a rule bug")

        monkeypatch.setattr(engine.Run, "lint_unit", failing)
        with pytest.raises(RuntimeError):
            lint_paths(["."])
        assert gc.isenabled() == collecting
    finally:
        gc.enable()
