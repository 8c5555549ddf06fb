"""The `mplint` command as users and tools call it: options, output streams and exit codes.

Most cases run a real `python -m mplint` process, because exit codes, stdin and "never a
traceback" are properties of the process; the CliRunner covers what needs monkeypatching.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from mplint import __version__
from mplint.cli import main

CLEAN = """\
import torch
import torch.nn.functional as F
model = torch.nn.Linear(4, 4).to(torch.bfloat16)
logp = F.log_softmax(model(torch.randn(2, 4)).float(), dim=-1)
"""


def mplint(
    *args: str, cwd: Path, stdin: str | bytes | None = None
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, "-m", "mplint", *args],
        cwd=cwd,
        input=stdin.encode() if isinstance(stdin, str) else stdin,
        capture_output=True,
        timeout=120,
    )
    return subprocess.CompletedProcess(
        completed.args,
        completed.returncode,
        completed.stdout.decode(),
        completed.stderr.decode(),
    )


def codes_by_location(output: str) -> list[tuple[str, int, str]]:
    """(path, line, code) of each text line, in printed order."""
    located = []
    for line in output.splitlines():
        path, number, _, rest = line.split(":", 3)
        located.append((path, int(number), rest.split()[0]))
    return located


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_version(project) -> None:
    result = mplint("--version", cwd=project)

    assert (result.returncode, result.stdout) == (0, f"mplint {__version__}\n")


def test_a_clean_file_passes(project, write_files) -> None:
    write_files(project, {"train.py": CLEAN})

    result = mplint("train.py", cwd=project)

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        "",
        "All checks passed (1 file).\n",
    )


def test_a_finding_is_one_line_and_exit_code_1(project, write_files, uncast_log_softmax) -> None:
    write_files(project, {"rl/ppo.py": uncast_log_softmax})

    result = mplint("rl/ppo.py", cwd=project)

    assert result.returncode == 1
    assert result.stdout.startswith("rl/ppo.py:4:")
    assert " MP001 [uncast-log-softmax] " in result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr == "Found 1 finding in 1 file.\n"


@pytest.mark.parametrize("args", [["train.py"], ["check", "train.py"], [], ["check"], ["."]])
def test_check_is_the_default_command_and_dot_the_default_path(
    project, write_files, uncast_log_softmax, args
) -> None:
    write_files(project, {"train.py": uncast_log_softmax})

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1
    assert codes_by_location(result.stdout) == [("train.py", 4, "MP001")]


def test_findings_are_sorted_by_path_then_line(
    project, write_files, uncast_log_softmax, unparsable
) -> None:
    twice = uncast_log_softmax + "ref_logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)\n"
    write_files(project, {"trainers/sft.py": uncast_log_softmax, "b.py": twice, "a.py": unparsable})

    result = mplint(".", cwd=project)

    assert [(path, code) for path, _, code in codes_by_location(result.stdout)] == [
        ("a.py", "MP000"),
        ("b.py", "MP001"),
        ("b.py", "MP001"),
        ("trainers/sft.py", "MP001"),
    ]
    assert codes_by_location(result.stdout)[1:3] == [("b.py", 4, "MP001"), ("b.py", 5, "MP001")]
    assert result.stderr == "Found 4 findings in 3 files.\n"


def test_json_output_is_an_array_of_findings(project, write_files, uncast_log_softmax) -> None:
    write_files(project, {"train.py": uncast_log_softmax})

    result = mplint("--format", "json", "train.py", cwd=project)

    assert result.returncode == 1
    [finding] = json.loads(result.stdout)
    assert list(finding)[:9] == [
        "code", "name", "path", "line", "column", "end_line", "end_column", "message", "severity",
    ]  # fmt: skip
    assert (finding["code"], finding["name"], finding["path"], finding["line"]) == (
        "MP001",
        "uncast-log-softmax",
        "train.py",
        4,
    )
    assert finding["column"] >= 1 and finding["end_line"] >= 4


def test_json_output_without_findings_is_an_empty_array(project, write_files) -> None:
    write_files(project, {"train.py": CLEAN})

    result = mplint("check", "--format=json", cwd=project)

    assert (result.returncode, json.loads(result.stdout)) == (0, [])


@pytest.mark.parametrize(
    "statement",
    [
        "logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)  # noqa: MP001",
        "logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)  # noqa:MP002,MP001",
        "logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)  # NOQA",
        # On the first line of the statement that holds the reported expression.
        "logp = (  # noqa: MP001\n    F.log_softmax(model(torch.randn(2, 4)), dim=-1)\n)",
    ],
)
def test_noqa_silences_a_finding(project, write_files, uncast_log_softmax, statement) -> None:
    source = uncast_log_softmax.replace(uncast_log_softmax.splitlines()[3], statement)
    write_files(project, {"train.py": source})

    result = mplint("train.py", cwd=project)

    assert (result.returncode, result.stdout) == (0, "")


@pytest.mark.parametrize(
    "statement",
    [
        "logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)  # noqa: MP003",
        'logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1 if "# noqa" else 0)',
    ],
)
def test_noqa_for_other_codes_or_inside_strings_does_not_silence(
    project, write_files, uncast_log_softmax, statement
) -> None:
    source = uncast_log_softmax.replace(uncast_log_softmax.splitlines()[3], statement)
    write_files(project, {"train.py": source})

    result = mplint("train.py", cwd=project)

    assert codes_by_location(result.stdout) == [("train.py", 4, "MP001")]


@pytest.mark.parametrize(
    ("options", "config", "exit_code"),
    [
        (["--ignore", "MP001"], "", 0),
        (["--ignore", "MP0"], "", 0),
        (["--select", "MP002,MP003"], "", 0),
        (["--select", "MP002", "--select", "MP001"], "", 1),
        (["--select", "ALL", "--ignore", "MP001"], "", 0),
        ([], 'ignore = ["MP001"]', 0),
        # A command-line select replaces the configured selection, as in ruff.
        (["--select", "MP001"], 'ignore = ["MP001"]', 1),
        (["--ignore", "MP001"], 'select = ["MP001"]', 0),
    ],
)
def test_select_and_ignore(
    project, write_files, uncast_log_softmax, options, config, exit_code
) -> None:
    write_files(
        project, {"train.py": uncast_log_softmax, "pyproject.toml": f"[tool.mplint]\n{config}\n"}
    )

    result = mplint(*options, "train.py", cwd=project)

    assert (result.returncode, result.stderr.count("\n")) == (exit_code, 1)


def test_per_file_ignores_and_excludes_from_pyproject(
    project, write_files, uncast_log_softmax
) -> None:
    write_files(
        project,
        {
            "pyproject.toml": textwrap.dedent(
                """\
                [tool.mplint]
                extend-exclude = ["experiments"]

                [tool.mplint.per-file-ignores]
                "scripts/*.py" = ["MP001"]
                """
            ),
            "train.py": uncast_log_softmax,
            "scripts/probe_logits.py": uncast_log_softmax,
            "experiments/sweep.py": uncast_log_softmax,
        },
    )

    walked = mplint(cwd=project)
    named = mplint("experiments/sweep.py", cwd=project)

    assert codes_by_location(walked.stdout) == [("train.py", 4, "MP001")]
    assert walked.stderr == "Found 1 finding in 1 file.\n"
    # A file named on the command line is checked even when excluded (ruff's behaviour).
    assert codes_by_location(named.stdout) == [("experiments/sweep.py", 4, "MP001")]


def test_config_option_reads_a_plain_toml(project, write_files, uncast_log_softmax) -> None:
    write_files(project, {"train.py": uncast_log_softmax, "ci/mplint.toml": 'ignore = ["MP001"]\n'})

    result = mplint("--config", "ci/mplint.toml", "train.py", cwd=project)

    assert result.returncode == 0


@pytest.mark.parametrize(
    ("args", "shown_as"),
    [
        (["-", "--stdin-filename", "src/rl/ppo.py"], "src/rl/ppo.py"),
        (["--stdin-filename", "src/rl/ppo.py"], "src/rl/ppo.py"),
        (["check", "-"], "<stdin>"),
    ],
)
def test_stdin_is_checked_under_its_editor_filename(
    project, uncast_log_softmax, args, shown_as
) -> None:
    result = mplint(*args, cwd=project, stdin=uncast_log_softmax)

    assert result.returncode == 1
    assert codes_by_location(result.stdout) == [(shown_as, 4, "MP001")]
    assert result.stderr == "Found 1 finding in 1 file.\n"


def test_stdin_honours_per_file_ignores_for_its_filename(
    project, write_files, uncast_log_softmax
) -> None:
    write_files(
        project, {"pyproject.toml": '[tool.mplint.per-file-ignores]\n"notebooks/*" = ["MP001"]\n'}
    )

    result = mplint(
        "-", "--stdin-filename", "notebooks/probe.py", cwd=project, stdin=uncast_log_softmax
    )

    assert (result.returncode, result.stdout) == (0, "")


def test_undecodable_stdin_is_an_mp000_finding(project) -> None:
    result = mplint("-", cwd=project, stdin=b"name = 'caf\xe9'\n")

    assert result.returncode == 1
    assert " MP000 [invalid-syntax] " in result.stdout
    assert "not valid UTF-8" in result.stdout


def test_stdin_cannot_be_combined_with_paths(project, write_files) -> None:
    write_files(project, {"train.py": CLEAN})

    result = mplint("-", "train.py", cwd=project, stdin=CLEAN)

    assert result.returncode == 2
    assert result.stderr == "mplint: '-' (standard input) cannot be combined with other paths\n"


def test_unparsable_and_binary_files_are_mp000_and_the_run_goes_on(
    project, write_files, uncast_log_softmax, unparsable
) -> None:
    write_files(
        project,
        {
            "a_broken.py": unparsable,
            "b_binary.py": b"\x7fELF\x00\x01",
            "c_train.py": uncast_log_softmax,
        },
    )

    result = mplint(".", cwd=project)
    ignored = mplint(".", "--ignore", "MP000", cwd=project)

    assert result.returncode == 1
    assert [(path, code) for path, _, code in codes_by_location(result.stdout)] == [
        ("a_broken.py", "MP000"),
        ("b_binary.py", "MP000"),
        ("c_train.py", "MP001"),
    ]
    assert "binary file" in result.stdout.splitlines()[1]
    assert codes_by_location(ignored.stdout) == [("c_train.py", 4, "MP001")]


def test_a_missing_path_is_a_usage_error(project, write_files) -> None:
    write_files(project, {"train.py": CLEAN})

    result = mplint("train.py", "trian.py", cwd=project)

    assert (result.returncode, result.stdout, result.stderr) == (
        2,
        "",
        "mplint: trian.py: no such file or directory\n",
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('selct = ["MP001"]', "unknown key 'selct' (did you mean 'select'?)"),
        ('ignore = "MP001"', "'ignore' must be a list of strings"),
        ('select = ["MP9"]', "select: unknown rule code or prefix 'MP9'"),
        ("per-file-ignores = 3", "'per-file-ignores' must be a table"),
        ("select = [", "invalid TOML"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_code_2(project, write_files, config, message):
    write_files(project, {"pyproject.toml": f"[tool.mplint]\n{config}\n", "train.py": CLEAN})

    result = mplint("train.py", cwd=project)

    assert result.returncode == 2
    assert result.stderr.startswith("mplint: pyproject.toml: ")
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--select", "MP9", "train.py"], "mplint: --select: unknown rule code or prefix 'MP9'\n"),
        (
            ["--config", "missing.toml", "train.py"],
            "mplint: config file 'missing.toml' not found\n",
        ),
    ],
)
def test_bad_options_are_one_line_and_exit_code_2(project, write_files, args, message) -> None:
    write_files(project, {"train.py": CLEAN})

    result = mplint(*args, cwd=project)

    assert (result.returncode, result.stderr) == (2, message)


@pytest.mark.parametrize("args", [["--"], ["check", "--"], ["--format", "json", "--"]])
def test_an_empty_file_list_after_the_separator_is_a_no_op(
    project, write_files, uncast_log_softmax, args
) -> None:
    # What a hook runner passes when it has no files: nothing to check, not the whole tree.
    write_files(project, {"train.py": uncast_log_softmax})

    result = mplint(*args, cwd=project)

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_a_directory_without_python_files(project, write_files) -> None:
    write_files(project, {"README.md": "# trainer\n"})

    result = mplint(cwd=project)

    assert (result.returncode, result.stderr) == (0, "No Python files found.\n")


def test_an_internal_error_is_one_line_and_exit_code_2(project, write_files, monkeypatch) -> None:
    from mplint import api

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("precision model lost track of `policy`")

    monkeypatch.setattr(api, "lint_paths", crash)
    write_files(project, {"train.py": CLEAN})

    result = CliRunner().invoke(main, ["train.py"])

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "mplint: internal error while checking train.py: RuntimeError: precision model lost "
        "track of `policy`; please report this at "
    )
    assert result.stderr.count("\n") == 1


def test_rules_lists_every_rule_then_the_runtime_codes(project) -> None:
    from mplint.registry import all_rules
    from mplint.runtime.codes import RUNTIME_CODES

    result = mplint("rules", cwd=project)

    header, *rows = result.stdout.splitlines()
    assert result.returncode == 0
    assert header.split() == ["CODE", "NAME", "FIX", "SUMMARY"]
    expected = [[rule.CODE, rule.NAME] for rule in all_rules()] + [[code.code, code.name] for code in RUNTIME_CODES.values()]
    assert [row.split()[:2] for row in rows] == expected
    assert any(row.startswith("MP001 ") for row in rows)
    assert rows[-1].startswith("MP903 ") and rows[-1].endswith("(runtime only: mplint verify)")


@pytest.mark.parametrize("rule", ["MP001", "mp001", "uncast-log-softmax"])
def test_explain_prints_the_rules_documentation(project, rule) -> None:
    from mplint.registry import rule_by_code

    result = mplint("explain", rule, cwd=project)

    assert result.returncode == 0
    assert result.stdout.startswith("MP001 (uncast-log-softmax)\n\n")
    assert rule_by_code("MP001").docs() in result.stdout


def test_explain_an_unknown_rule(project) -> None:
    result = mplint("explain", "MP999", cwd=project)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "mplint: unknown rule 'MP999'; `mplint rules` lists them\n"


def test_help_lists_the_commands(project) -> None:
    result = mplint("--help", cwd=project)

    assert result.returncode == 0
    for command in ("check", "explain", "rules", "verify"):
        assert f"  {command} " in result.stdout


def test_an_unknown_option_is_a_usage_error(project) -> None:
    result = mplint("--format", "sarif-v9", "train.py", cwd=project)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_an_engine_error_names_the_file_it_was_checking(project, write_files, monkeypatch) -> None:
    from mplint import api
    from mplint.errors import InternalError

    def crash(*args: object, **kwargs: object) -> None:
        raise InternalError("rl/ppo.py", "a rule failed", KeyError("logits"))

    monkeypatch.setattr(api, "lint_paths", crash)
    write_files(project, {"rl/ppo.py": CLEAN})

    result = CliRunner().invoke(main, ["rl"])

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "mplint: internal error: a rule failed while checking rl/ppo.py: KeyError: 'logits'; "
        "please report this at "
    )


def test_ctrl_c_is_an_interruption_not_findings(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mplint.api

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(mplint.api, "lint_paths", interrupted)
    result = CliRunner().invoke(main, ["."])

    assert result.exit_code == 2
    assert "mplint: interrupted" in result.output
