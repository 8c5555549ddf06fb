"""`mplint verify` for CI: SARIF with verdicts, GitHub annotations, the step summary, the progress line,
and a report that cannot be written."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner, Result

from mplint.runtime.runner import run_script
from tests.runtime.support import marked_line, script, verify
from tests.test_sarif import SCHEMA_PATH

SCRIPT = "tests/runtime/scripts/bf16_policy.py"
GITHUB = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/rl", "GITHUB_SHA": "0123abc"}


def verify_with_env(env: dict[str, str], *args: str) -> Result:
    from mplint.runtime.command import verify as command

    return CliRunner().invoke(command, list(args), env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def sarif_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """One run as a CI job makes it: SARIF on stdout, a step summary that already holds another step's text."""
    summary = tmp_path_factory.mktemp("summary") / "step_summary.md"
    summary.write_text("earlier step\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary), **GITHUB}
    return verify_with_env(env, "--format", "sarif", "--steps", "1", script("bf16_policy.py")), summary


def test_verify_writes_sarif_with_verdicts_that_validates(sarif_run: tuple[Result, Path]) -> None:
    result, _ = sarif_run
    if not SCHEMA_PATH.exists():
        pytest.skip(f"the SARIF schema is not at {SCHEMA_PATH}")
    log = json.loads(result.stdout)  # stdout holds the log alone: the script's prints went to stderr
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.validators.validator_for(schema)
    validator(schema, format_checker=validator.FORMAT_CHECKER).validate(log)
    [mp001] = [result for result in log["runs"][0]["results"] if result["ruleId"] == "MP001"]
    assert result.exit_code == 1
    assert mp001["properties"]["verdict"] == "confirmed"
    assert mp001["properties"]["evidence"] == [
        f"aten._log_softmax ran on bfloat16 at {SCRIPT}:{marked_line('bf16_policy.py', 'MP001')}, 1 call"
    ]
    assert mp001["message"]["text"].endswith(f"{mp001['properties']['evidence'][0]} (on emulated-cuda)]")
    assert mp001["locations"][0]["physicalLocation"]["region"]["startLine"] == marked_line("bf16_policy.py", "MP001")


def test_the_step_summary_gets_a_table_of_findings_verdicts_and_links(sarif_run: tuple[Result, Path]) -> None:
    _, summary = sarif_run
    line = marked_line("bf16_policy.py", "MP001")
    text = summary.read_text()
    assert text.startswith("earlier step\n### mplint verify `")  # appended, as GitHub wants
    assert "1 optimizer step recorded; 2 confirmed. Exit status 1: a finding was confirmed" in text
    assert "| Finding | Verdict | Evidence | Where |" in text
    [row] = [row for row in text.splitlines() if row.startswith("| **MP001**")]
    cells = [cell.strip() for cell in row.strip("|").split(" | ")]
    assert cells[1:] == [
        "confirmed",
        f"aten._log_softmax ran on bfloat16 at {SCRIPT}:{line}, 1 call",
        f"[{SCRIPT}:{line}](https://github.com/acme/rl/blob/0123abc/{SCRIPT}#L{line})",
    ]


def test_without_the_repository_in_the_environment_the_summary_names_the_line(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = verify_with_env({"GITHUB_STEP_SUMMARY": str(summary)}, "--steps", "1", script("bf16_policy.py"))
    assert result.exit_code == 1
    assert f"| `{SCRIPT}:{marked_line('bf16_policy.py', 'MP001')}` |" in summary.read_text()


def test_verify_annotates_with_the_verdict_in_github_format() -> None:
    result = verify("--format", "github", "--steps", "1", script("bf16_policy.py"))
    line = marked_line("bf16_policy.py", "MP001")
    [annotation] = [text for text in result.stdout.splitlines() if "MP001" in text]
    assert annotation.startswith(f"::error file={SCRIPT},line={line},")
    assert annotation.endswith(f"[confirmed: aten._log_softmax ran on bfloat16 at {SCRIPT}:{line}, 1 call (on emulated-cuda)]")
    assert all(text.startswith("::") for text in result.stdout.splitlines())  # the script's prints went to stderr


def test_a_report_that_cannot_be_written_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = verify("--steps", "1", "--report", str(tmp_path / "missing" / "report.html"), script("bf16_policy.py"))
    assert result.exit_code == 2
    assert f"mplint: cannot write the report to {tmp_path / 'missing' / 'report.html'}: No such file or directory" in (
        result.stderr
    )
    assert "Traceback" not in result.output


def test_progress_is_shown_per_step_with_elapsed_time_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    run_script(script("bf16_policy.py"), steps=2, progress=True)
    shown = capsys.readouterr().err
    assert "\rmplint verify: step 1/2, " in shown and "\rmplint verify: step 2/2, " in shown
    assert " s elapsed, " in shown and " torch calls recorded" in shown
    # Off the terminal (CliRunner's stderr is not a tty) the command asks for none.
    assert "mplint verify: step" not in verify("--steps", "1", script("bf16_policy.py")).stderr
