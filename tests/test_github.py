"""`--format github`: one workflow command per finding, which GitHub Actions shows as an
annotation on the pull request's diff."""

from __future__ import annotations

from pathlib import Path

from mplint.findings import Finding, Severity
from mplint.report import github
from tests.test_cli import mplint
from tests.test_report import CONFIRMED, UNCAST


def test_a_finding_is_an_error_command_with_its_span_and_title() -> None:
    assert github.render([UNCAST]) == (
        "::error file=rl/ppo.py,line=42,col=12,endLine=42,endColumn=49,"
        "title=MP001 [uncast-log-softmax]::" + UNCAST.message
    )


def test_a_warning_is_a_warning_command() -> None:
    assert github.render([CONFIRMED]).startswith("::warning file=train_fp16.py,line=30,")


def test_message_and_properties_are_escaped_as_the_runner_expects() -> None:
    odd = Finding(
        "MP001",
        "uncast-log-softmax",
        "runs/50%,b:c.py",
        3,
        1,
        3,
        9,
        "100% of logits\r\nare bf16: cast, then log_softmax",
        Severity.ERROR,
    )
    properties, message = github.render([odd]).removeprefix("::error ").split("::", 1)
    assert message == "100%25 of logits%0D%0Aare bf16: cast, then log_softmax"
    assert properties.startswith("file=runs/50%25%2Cb%3Ac.py,line=3,")


def test_one_line_per_finding_and_nothing_when_clean(tmp_path: Path, uncast_log_softmax: str) -> None:
    (tmp_path / "train.py").write_text(uncast_log_softmax)
    (tmp_path / "eval.py").write_text(uncast_log_softmax)
    completed = mplint("--format", "github", ".", cwd=tmp_path)
    assert completed.returncode == 1
    lines = completed.stdout.splitlines()
    assert [line.split(",")[0] for line in lines] == ["::error file=eval.py", "::error file=train.py"]
    assert github.render([]) == ""
