"""`--show-source`, `--statistics`, `--quiet` and `--output-file`: how findings reach people."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from mplint.cli import main
from mplint.report import text
from tests.test_cli import mplint
from tests.test_report import FIXABLE, UNCAST

SOURCE = "\tlogp = F.log_softmax(policy(obs), dim=-1)"


def test_show_source_puts_carets_under_the_reported_span() -> None:
    finding = replace(UNCAST, line=1, column=9, end_line=1, end_column=41)
    rendered = text.render_with_source([finding], lambda path: [SOURCE], color=False)
    assert rendered.splitlines()[1:] == [
        "  |",
        f"1 | {SOURCE}",
        "  | \t" + " " * 7 + "^" * 32 + " MP001",  # the tab stays a tab
        "  |",
    ]


def test_show_source_without_the_file_prints_the_finding_alone() -> None:
    assert text.render_with_source([UNCAST], lambda path: None, color=False) == text.render([UNCAST])


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uncast_log_softmax: str) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text(uncast_log_softmax)
    return tmp_path


def test_show_source_from_the_command_line_and_stdin(project: Path, uncast_log_softmax: str) -> None:
    from_file = mplint("--show-source", "train.py", cwd=project)
    from_stdin = mplint("--show-source", "--stdin-filename", "train.py", "-", cwd=project, stdin=uncast_log_softmax)
    assert from_file.stdout == from_stdin.stdout
    assert "4 | logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)\n" in from_file.stdout
    assert "\x1b[" not in from_file.stdout  # not a terminal: no colour


def test_a_terminal_gets_colour_and_the_output_file_never(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mplint.cli._colour_wanted", lambda: True)
    on_terminal = CliRunner().invoke(main, ["--show-source", "--no-cache", "train.py"], color=True)
    assert "\x1b[" in on_terminal.output
    CliRunner().invoke(main, ["--show-source", "--no-cache", "-o", "out.txt", "train.py"], color=True)
    assert "\x1b[" not in (project / "out.txt").read_text()


def test_no_color_turns_colour_off_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from mplint import cli

    monkeypatch.setattr(cli.sys.stdout, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._colour_wanted()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli._colour_wanted()


def test_statistics_count_findings_per_rule_most_frequent_first() -> None:
    other = replace(UNCAST, code="MP002", name="fp16-autocast-without-scaler")
    assert text.statistics([other, UNCAST, FIXABLE]) == (
        "2  MP001  [*] [uncast-log-softmax]\n1  MP002  [fp16-autocast-without-scaler]"
    )


def test_statistics_as_json_are_the_same_counts(project: Path) -> None:
    completed = mplint("--statistics", "--format", "json", "train.py", cwd=project)

    assert completed.returncode == 1
    assert json.loads(completed.stdout) == [
        {"code": "MP001", "name": "uncast-log-softmax", "count": 1, "fixable": False}
    ]


def test_statistics_in_a_format_without_counts_is_a_usage_error(project: Path) -> None:
    completed = mplint("--statistics", "--format", "sarif", "train.py", cwd=project)

    assert completed.returncode == 2
    assert completed.stderr == "mplint: --statistics prints text or json, not sarif\n"
    assert completed.stdout == ""


def test_quiet_prints_findings_and_nothing_else(project: Path) -> None:
    completed = mplint("--quiet", "train.py", cwd=project)
    assert completed.returncode == 1
    assert completed.stdout.startswith("train.py:4:8: MP001")
    assert completed.stderr == ""


def test_an_unwritable_output_file_is_one_line(project: Path) -> None:
    completed = mplint("--output-file", "missing/dir/out.txt", "train.py", cwd=project)
    assert completed.returncode == 2
    assert completed.stderr.startswith("mplint: cannot write missing/dir/out.txt")
    assert "Traceback" not in completed.stderr
