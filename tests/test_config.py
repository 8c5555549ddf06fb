"""`[tool.mplint]` is found, validated in one line per problem, and decides codes per path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mplint.config import DEFAULT_EXCLUDE, TRAINING_RUN_CODES, RuleSelection, Settings, glob_matches, load_settings
from mplint.errors import ConfigError
from mplint.registry import rule_codes

KNOWN_CODES = frozenset({"MP000", "MP001", "MP002", "MP003", "MP101"})


def pyproject(body: str) -> str:
    return "[project]\nname = 'trainer'\n\n[tool.mplint]\n" + textwrap.dedent(body)


def load(start: Path, **kwargs: object) -> Settings:
    return load_settings(start, known_codes=KNOWN_CODES, **kwargs)


def enabled(settings: Settings, path: str = "train.py") -> set[str]:
    return {code for code in KNOWN_CODES if settings.is_enabled(code, path)}


def test_the_nearest_configured_pyproject_wins(tmp_path, write_files) -> None:
    write_files(
        tmp_path,
        {
            "pyproject.toml": pyproject('ignore = ["MP002"]'),
            # A pyproject.toml without [tool.mplint] (a sub-package) is walked past.
            "libs/rl/pyproject.toml": "[project]\nname = 'rl'\n",
            "libs/rl/src/ppo.py": "",
        },
    )

    settings = load(tmp_path / "libs/rl/src/ppo.py")

    assert settings.config_file == tmp_path / "pyproject.toml"
    assert settings.root == tmp_path
    assert enabled(settings) == KNOWN_CODES - {"MP002"}


def test_without_configuration_every_rule_runs_from_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    settings = load(tmp_path)

    assert settings.config_file is None
    assert settings.root == tmp_path
    assert settings.exclude == DEFAULT_EXCLUDE
    assert enabled(settings) == KNOWN_CODES


@pytest.mark.parametrize(
    ("select", "ignore", "expected"),
    [
        (["MP0"], [], {"MP000", "MP001", "MP002", "MP003"}),
        (["ALL"], ["MP0"], {"MP101"}),
        # The more specific prefix wins, whichever list it is in.
        (["MP0"], ["MP001"], {"MP000", "MP002", "MP003"}),
        (["MP001"], ["MP0"], {"MP001"}),
        # On a tie, ignore wins.
        (["MP001"], ["MP001"], set()),
        ([], [], set()),
    ],
)
def test_select_and_ignore_resolve_by_specificity(tmp_path, write_files, select, ignore, expected) -> None:
    write_files(tmp_path, {"pyproject.toml": pyproject(f"select = {select}\nignore = {ignore}\n")})

    assert enabled(load(tmp_path)) == expected


def test_command_line_select_replaces_the_configured_selection(tmp_path, write_files) -> None:
    write_files(tmp_path, {"pyproject.toml": pyproject('select = ["MP001"]\nignore = ["MP002"]')})
    settings = load(tmp_path)

    assert enabled(settings.with_selection(["MP002"], None, KNOWN_CODES)) == {"MP002"}
    assert enabled(settings.with_selection(None, ["MP001"], KNOWN_CODES)) == set()
    assert settings.with_selection(None, None, KNOWN_CODES) is settings


def test_ignore_only_layers_narrow_what_came_before() -> None:
    settings = Settings(
        root=Path("/"),
        selections=(RuleSelection(select=("ALL",)), RuleSelection(ignore=("MP00",))),
    )

    assert enabled(settings) == {"MP101"}


def test_per_file_ignores_match_globs_relative_to_the_config(tmp_path, write_files, monkeypatch) -> None:
    write_files(
        tmp_path,
        {
            "pyproject.toml": pyproject(
                """\
                [tool.mplint.per-file-ignores]
                "tests/**" = ["MP0"]
                "scripts/eval_*.py" = ["MP002", "MP003"]
                "conftest.py" = ["ALL"]
                """
            )
        },
    )
    monkeypatch.chdir(tmp_path / "..")
    settings = load(tmp_path)
    project = tmp_path.name

    assert enabled(settings, f"{project}/tests/rl/test_ppo.py") == {"MP101"}
    assert enabled(settings, f"{project}/scripts/eval_gsm8k.py") == {"MP000", "MP001", "MP101"}
    assert enabled(settings, f"{project}/scripts/nested/eval_gsm8k.py") == KNOWN_CODES
    assert enabled(settings, f"{project}/src/pkg/conftest.py") == set()
    assert enabled(settings, f"{project}/train.py") == KNOWN_CODES


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_trainer.py",
        "src/pkg/tests/helpers.py",
        "test/compile.py",
        "kernel/test_triton.py",
        "src/model_test.py",
        "conftest.py",
    ],
)
def test_test_files_are_no_training_run_by_default(tmp_path, path: str) -> None:
    # Tests build half models and optimizers over them on purpose: the MP0 rules stay quiet there.
    settings = Settings(root=tmp_path)
    assert enabled(settings, str(tmp_path / path)) == {"MP000", "MP101"}
    assert enabled(settings, str(tmp_path / "train_test_split.py")) == KNOWN_CODES
    assert enabled(settings, str(tmp_path / "contest/train.py")) == KNOWN_CODES


def test_the_training_run_codes_are_the_mp00x_rules() -> None:
    assert set(TRAINING_RUN_CODES) == {code for code in rule_codes() if code.startswith("MP00") and code != "MP000"}


def test_per_file_ignores_replaces_the_test_defaults_and_extend_adds(tmp_path, write_files) -> None:
    write_files(tmp_path, {"pyproject.toml": pyproject('[tool.mplint.per-file-ignores]\n"eval/**" = ["MP003"]\n')})
    replaced = load(tmp_path)
    write_files(
        tmp_path, {"pyproject.toml": pyproject('[tool.mplint.extend-per-file-ignores]\n"eval/**" = ["MP003"]\n')}
    )
    extended = load(tmp_path)

    assert enabled(replaced, str(tmp_path / "tests/test_ppo.py")) == KNOWN_CODES
    assert enabled(replaced, str(tmp_path / "eval/run.py")) == KNOWN_CODES - {"MP003"}
    assert enabled(extended, str(tmp_path / "tests/test_ppo.py")) == {"MP000", "MP101"}
    assert enabled(extended, str(tmp_path / "eval/run.py")) == KNOWN_CODES - {"MP003"}


def test_exclude_replaces_the_defaults_and_extend_exclude_adds(tmp_path, write_files) -> None:
    write_files(tmp_path, {"pyproject.toml": pyproject('exclude = ["third_party"]')})
    replaced = load(tmp_path)
    write_files(tmp_path, {"pyproject.toml": pyproject('extend-exclude = ["/notebooks"]')})
    extended = load(tmp_path)

    assert replaced.is_excluded(tmp_path / "third_party")
    assert not replaced.is_excluded(tmp_path / "build")
    assert extended.is_excluded(tmp_path / "build")
    assert extended.is_excluded(tmp_path / "notebooks/explore.py")
    assert not extended.is_excluded(tmp_path / "src/notebooks/explore.py")


def test_config_option_reads_a_plain_toml_at_top_level(tmp_path, write_files) -> None:
    write_files(tmp_path, {"ci/mplint.toml": 'select = ["MP001"]\n', "pyproject.toml": ""})

    settings = load(tmp_path, config_file=tmp_path / "ci/mplint.toml")

    assert settings.root == tmp_path / "ci"
    assert enabled(settings) == {"MP001"}


def test_config_option_reads_a_pyproject_table(tmp_path, write_files) -> None:
    write_files(tmp_path, {"other/pyproject.toml": pyproject('ignore = ["MP1"]')})

    settings = load(tmp_path, config_file=tmp_path / "other/pyproject.toml")

    assert enabled(settings) == KNOWN_CODES - {"MP101"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'selct = ["MP001"]',
            "pyproject.toml: [tool.mplint] unknown key 'selct' (did you mean 'select'?)",
        ),
        (
            'extend_exclude = ["x"]',
            "pyproject.toml: [tool.mplint] unknown key 'extend_exclude' (did you mean 'extend-exclude'?)",
        ),
        (
            'select = "MP001"',
            "pyproject.toml: [tool.mplint] 'select' must be a list of strings, got str 'MP001'",
        ),
        (
            "exclude = [1]",
            "pyproject.toml: [tool.mplint] 'exclude' must be a list of strings, got list [1]",
        ),
        (
            'per-file-ignores = ["tests/*"]',
            "pyproject.toml: [tool.mplint] 'per-file-ignores' must be a table of glob = [codes], got list ['tests/*']",
        ),
        (
            'per-file-ignores = {"tests/*" = "MP001"}',
            "pyproject.toml: [tool.mplint] 'per-file-ignores.\"tests/*\"' must be a list of strings, got str 'MP001'",
        ),
        (
            'ignore = ["MP0001"]',
            "pyproject.toml: [tool.mplint] ignore: unknown rule code or prefix 'MP0001' (did you mean 'MP001'?)",
        ),
        (
            'select = ["E501"]',
            "pyproject.toml: [tool.mplint] select: unknown rule code or prefix 'E501'",
        ),
    ],
)
def test_each_problem_is_one_clear_line(tmp_path, write_files, monkeypatch, body, message) -> None:
    write_files(tmp_path, {"pyproject.toml": pyproject(body)})
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as raised:
        load(tmp_path)

    assert str(raised.value) == message


def test_malformed_toml_is_reported_with_its_position(tmp_path, write_files, monkeypatch) -> None:
    write_files(tmp_path, {"pyproject.toml": pyproject('select = ["MP001"\nignore = []')})
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError) as raised:
        load(tmp_path)

    message = str(raised.value)
    assert message.startswith("pyproject.toml: invalid TOML: ")
    assert "line 6" in message  # where the unclosed array ends
    assert "\n" not in message


def test_a_tool_mplint_that_is_not_a_table_is_an_error(tmp_path, write_files, monkeypatch) -> None:
    write_files(tmp_path, {"pyproject.toml": '[tool]\nmplint = "strict"\n'})
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError, match=r"^pyproject.toml: \[tool.mplint\] must be a table"):
        load(tmp_path)


def test_a_missing_config_file_is_an_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file '.*mplint.toml' not found"):
        load(tmp_path, config_file=tmp_path / "mplint.toml")


def test_unknown_command_line_codes_name_the_option(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)

    with pytest.raises(ConfigError, match=r"^--select: unknown rule code or prefix 'MP9'$"):
        load(tmp_path).with_selection(["MP9"], None, KNOWN_CODES)


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("build", "build/lib/train.py", True),
        ("build", "src/build/train.py", True),
        ("build", "builder/train.py", False),
        ("*.egg-info", "src/trainer.egg-info/PKG-INFO", True),
        ("src/legacy", "src/legacy/amp.py", True),
        ("src/legacy", "vendor/src/legacy/amp.py", False),
        ("/generated", "generated/model.py", True),
        ("/generated", "src/generated/model.py", False),
        ("**/generated", "src/a/generated/model.py", True),
        ("tests/**", "tests/rl/test_ppo.py", True),
        ("tests/*.py", "tests/rl/test_ppo.py", False),
        ("src/**/eval_*.py", "src/eval_gsm8k.py", True),
        ("src/**/eval_*.py", "src/tasks/math/eval_gsm8k.py", True),
        ("test_?.py", "test_a.py", True),
        ("[!_]*.py", "_private.py", False),
        ("[!_]*.py", "train.py", True),
        ("train.py", "train_py", False),
    ],
)
def test_globs_follow_gitignore_conventions(pattern: str, path: str, matches: bool) -> None:
    assert glob_matches(pattern, path) is matches
