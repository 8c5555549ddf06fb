"""`--add-noqa`: silence today's findings in place, so a team adopts mplint and CI blocks only
new problems. Idempotent, merged into existing comments, never inside a string."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mplint.add_noqa import with_noqa
from mplint.findings import Finding
from mplint.text import SourceFile
from tests.test_cli import mplint
from tests.training_project import TRAINING_PROJECT


def finding(code: str, line: int) -> Finding:
    return Finding(code, "name", "train.py", line, 1, line, 2, "message")


def noqa(text: str, *findings: Finding) -> tuple[str, int]:
    return with_noqa(SourceFile("train.py", text), findings)


def test_codes_are_appended_sorted_to_the_reported_line() -> None:
    text = "logp = F.log_softmax(policy(obs), dim=-1)\nloss = -logp.mean()\n"
    assert noqa(text, finding("MP301", 1), finding("MP001", 1)) == (
        "logp = F.log_softmax(policy(obs), dim=-1)  # noqa: MP001, MP301\nloss = -logp.mean()\n",
        2,
    )


def test_an_existing_noqa_is_merged_and_other_comments_are_kept() -> None:
    text = "x = f(y)  # noqa: E501 (long)\nz = g(y)  # keep fp32 here\n"
    assert noqa(text, finding("MP001", 1), finding("MP002", 2)) == (
        "x = f(y)  # noqa: E501, MP001 (long)\nz = g(y)  # keep fp32 here  # noqa: MP002\n",
        2,
    )


def test_line_endings_and_a_last_line_without_newline_are_kept() -> None:
    assert noqa("a = 1\r\nb = 2", finding("MP001", 2)) == ("a = 1\r\nb = 2  # noqa: MP001", 1)


def test_a_line_inside_a_multiline_string_takes_the_comment_on_the_statement_line() -> None:
    text = 'model = build(\n    doc="""\n    bf16\n    """,\n)\n'
    fixed, added = noqa(text, finding("MP001", 3))
    assert fixed == 'model = build(  # noqa: MP001\n    doc="""\n    bf16\n    """,\n)\n'
    assert added == 1


def test_a_backslash_continuation_is_never_broken_by_a_comment() -> None:
    # Suppression reads the reported line and the statement's first: here neither can take a
    # comment, so the finding is left to be silenced by hand rather than the code broken.
    text = "loss = model(x) + \\\n    aux\n"
    assert noqa(text, finding("MP001", 1)) == (text, 0)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_files(tmp_path, TRAINING_PROJECT)


def test_after_add_noqa_the_project_is_clean_and_a_second_run_adds_nothing(project: Path) -> None:
    first = mplint("--add-noqa", "pkg", cwd=project)
    assert (first.returncode, first.stderr) == (0, "Added 3 noqa directives.\n")
    assert "optimizer = torch.optim.AdamW(policy.parameters())  # noqa: MP003\n" in (project / "pkg/train.py").read_text()
    after = mplint("pkg", cwd=project)
    # Only the file that does not parse remains: its syntax error cannot be silenced.
    assert [line.split(": ")[1].split()[0] for line in after.stdout.splitlines()] == ["MP000"]
    before_second = {path: path.read_bytes() for path in (project / "pkg").iterdir()}
    second = mplint("--add-noqa", "pkg", cwd=project)
    assert (second.returncode, second.stderr) == (0, "Added 0 noqa directives.\n")
    assert {path: path.read_bytes() for path in (project / "pkg").iterdir()} == before_second


def test_add_noqa_refuses_stdin(project: Path) -> None:
    completed = mplint("--add-noqa", "-", cwd=project, stdin="x = 1\n")
    assert completed.returncode == 2
    assert completed.stderr == "mplint: --add-noqa edits files: not with --fix, --diff or stdin\n"
