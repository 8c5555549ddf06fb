"""`.mplint_cache/`: a repeat run reuses results of files that did not change, and never
reuses one that no longer holds (a changed file or helper, config, rules, a corrupt entry).
A run over files whose stat did not change reads none of them and imports no libcst (the
whole-run snapshot); a rewrite within one timestamp tick or a changed data file is still seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mplint import api
from mplint.findings import Finding
from mplint.run import engine, snapshot
from mplint.run.cache import DIRECTORY, Memory, digest
from mplint.run.discovery import discover
from mplint.text import SourceFile
from tests.rules.test_frameworks_accelerate_launch import DEEPSPEED_BF16
from tests.rules.test_frameworks_accelerate_launch import project as accelerate_project
from tests.test_cli import mplint
from tests.training_project import EXPECTED, TRAINING_PROJECT

# The files analysed as units (broken.py and data.py mention no rule's words: syntax only).
UNITS = ["pkg/amp.py", "pkg/models.py", "pkg/train.py"]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_files(tmp_path, TRAINING_PROJECT)


@pytest.fixture
def analysed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The roots of the units this process analyses from now on (the cache's misses)."""
    roots: list[str] = []
    lint_unit = engine.Run.lint_unit

    def recording(self: engine.Run, root: str) -> engine.UnitResult:
        roots.append(root)
        return lint_unit(self, root)

    monkeypatch.setattr(engine.Run, "lint_unit", recording)
    return roots


def located(result: api.LintResult) -> list[tuple[str, int, str]]:
    return [(finding.path, finding.line, finding.code) for finding in result.findings]


def cached_lint(**options: object) -> api.LintResult:
    return api.lint_paths(["pkg"], cache=True, **options)  # type: ignore[arg-type]


def forget_snapshots(project: Path) -> None:
    """Drop the whole-run snapshots, so that the next run reads its files and asks the entries."""
    for stored in (project / DIRECTORY).glob("run-*.json"):
        stored.unlink()


def test_a_warm_run_analyses_nothing_and_finds_the_same(project: Path, analysed: list[str]) -> None:
    cold = cached_lint()
    assert sorted(analysed) == UNITS
    analysed.clear()
    warm = cached_lint()
    assert analysed == []
    assert warm == cold
    assert located(warm) == EXPECTED
    # Fixes survive the round trip through the cache: --fix works from a warm cache too.
    assert [f.fix for f in warm.findings] == [f.fix for f in api.lint_paths(["pkg"]).findings]


def test_the_cache_directory_ignores_itself_in_git(project: Path) -> None:
    cached_lint()
    assert (project / DIRECTORY / ".gitignore").read_text().splitlines()[-1] == "*"


def test_editing_a_helper_reanalyses_the_units_that_read_it(project: Path, analysed: list[str]) -> None:
    cached_lint()
    analysed.clear()
    models = project / "pkg/models.py"
    models.write_text(models.read_text().replace("torch.bfloat16", "torch.float32"))
    warm = cached_lint()
    # models.py no longer mentions a low precision: only checked for syntax now.
    assert analysed == ["pkg/train.py"]
    assert located(warm) == [EXPECTED[0], EXPECTED[1]]


def test_a_new_file_in_the_run_invalidates_entries(project: Path, analysed: list[str]) -> None:
    # Imports resolve against the run's files: a new module can change what a unit reads.
    cached_lint()
    analysed.clear()
    (project / "pkg/extra.py").write_text("import torch\nx = torch.ones(2).half()\n")
    cached_lint()
    assert "pkg/train.py" in analysed


def test_a_config_change_invalidates_every_entry(project: Path, analysed: list[str]) -> None:
    (project / "pyproject.toml").write_text("[tool.mplint]\nselect = ['ALL']\n")
    cached_lint()
    analysed.clear()
    (project / "pyproject.toml").write_text("[tool.mplint]\nselect = ['MP001', 'MP002']\n")
    warm = cached_lint()
    assert sorted(analysed) == UNITS
    assert located(warm) == [EXPECTED[0], EXPECTED[3]]


def test_a_selection_on_the_command_line_is_part_of_the_key(project: Path, analysed: list[str]) -> None:
    cached_lint()
    analysed.clear()
    narrowed = cached_lint(select=["MP003"])
    assert analysed  # not the findings of all rules, filtered afterwards
    assert located(narrowed) == [EXPECTED[2]]


@pytest.mark.parametrize("damage", [b"", b'{"salt": ', b"\x00\xff garbage", b'{"salt": 1}', b"[]"])
def test_a_corrupt_entry_is_ignored_and_rebuilt(project: Path, analysed: list[str], damage: bytes) -> None:
    cold = cached_lint()
    entries = sorted((project / DIRECTORY).glob("unit-*.json"))
    for entry in entries:
        entry.write_bytes(damage)
    forget_snapshots(project)
    analysed.clear()
    assert cached_lint() == cold
    assert len(analysed) == len(entries)
    assert all(json.loads(entry.read_bytes())["findings"] is not None for entry in entries)


def test_no_cache_neither_reads_nor_writes(project: Path) -> None:
    completed = mplint("--no-cache", "pkg", cwd=project)
    assert completed.returncode == 1
    assert not (project / DIRECTORY).exists()


def test_the_cache_lives_at_the_project_root_whatever_the_working_directory(project: Path) -> None:
    (project / "pyproject.toml").write_text("[tool.mplint]\n")
    completed = mplint("amp.py", cwd=project / "pkg")
    assert completed.returncode == 1
    assert (project / DIRECTORY).is_dir()
    assert not (project / "pkg" / DIRECTORY).exists()


def test_an_unwritable_cache_is_not_an_error(project: Path) -> None:
    (project / DIRECTORY).write_text("a file where the cache directory would be")
    completed = mplint("pkg", cwd=project)
    assert completed.returncode == 1
    assert completed.stderr == "Found 4 findings in 3 files.\n"


def test_concurrent_runs_share_the_cache_safely(project: Path) -> None:
    command = [sys.executable, "-m", "mplint", "-j", "1", "pkg"]
    runs = [subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [1] * 4
    assert len(set(outputs)) == 1
    assert mplint("pkg", cwd=project).stdout == outputs[0]
    assert not [path for path in (project / DIRECTORY).iterdir() if path.suffix == ".tmp"]


def test_fix_passes_reuse_the_cache_and_reanalyse_only_what_a_fix_changed(project: Path, analysed: list[str]) -> None:
    cached_lint()
    analysed.clear()

    result = api.fix_paths(["pkg"], unsafe=True, write=False, cache=True)

    # The first pass is all cache hits; the pass after the fix re-analyses the fixed file alone.
    assert analysed == ["pkg/train.py"]
    assert [change.path for change in result.changes] == ["pkg/train.py"]
    assert result.changes[0].after == api.fix_paths(["pkg"], unsafe=True, write=False).changes[0].after


@pytest.fixture
def read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts whose code the prefilter reads from now on (the first line of each)."""
    from mplint.run import prefilter

    texts: list[str] = []
    read_facts = prefilter.read_facts

    def recording(text: str, vocabulary: object) -> prefilter.CodeFacts:
        texts.append(text.splitlines()[0] if text else "")
        return read_facts(text, vocabulary)  # type: ignore[arg-type]

    monkeypatch.setattr(prefilter, "read_facts", recording)
    return texts


def test_a_warm_run_plans_from_the_cache_and_reads_only_changed_files(project: Path, read: list[str]) -> None:
    cold = cached_lint()
    assert len(read) == len(list((project / "pkg").glob("*.py")))
    read.clear()
    assert cached_lint() == cold
    assert read == []
    (project / "pkg/data.py").write_text("# edited\nBATCH_SIZE = 64\n")
    cached_lint()
    assert read == ["# edited"]


@pytest.mark.parametrize("damage", [b"", b'{"salt": "x", "facts": {}}', b'{"facts": [1]}', b"\xff"])
def test_a_corrupt_or_stale_prefilter_file_is_read_again(project: Path, read: list[str], damage: bytes) -> None:
    cold = cached_lint()
    (project / DIRECTORY / "prefilter.json").write_bytes(damage)
    forget_snapshots(project)
    read.clear()
    assert cached_lint() == cold
    assert len(read) == len(list((project / "pkg").glob("*.py")))
    read.clear()
    cached_lint()
    assert read == []  # rewritten


def test_editing_a_deepspeed_json_config_reanalyses_the_script_that_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, analysed: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    config = tmp_path / "pkg/ds_config.json"
    config.write_text('{"train_batch_size": 8, "bf16": {"enabled": true}}')
    (tmp_path / "pkg/rl.py").write_text(
        "import deepspeed\n"
        "import torch\n"
        "model = torch.nn.Linear(64, 1000)\n"
        'engine, *_ = deepspeed.initialize(model=model, config="ds_config.json")\n'
        "logp = engine(torch.randn(2, 64)).log_softmax(-1)\n"
    )
    assert [f.code for f in cached_lint(select=["MP001"]).findings] == ["MP001"]
    analysed.clear()
    assert [f.code for f in cached_lint(select=["MP001"]).findings] == ["MP001"]
    assert analysed == []
    config.write_text('{"train_batch_size": 8, "bf16": {"enabled": false}}')
    assert cached_lint(select=["MP001"]).findings == ()
    assert analysed == ["pkg/rl.py"]


def test_editing_an_accelerate_launch_config_reanalyses_the_script_it_launches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, analysed: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'rl'\n")
    config = tmp_path / "accelerate_config.yaml"
    config.write_text("distributed_type: DEEPSPEED\nmixed_precision: bf16\n")
    (tmp_path / "pkg/rl.py").write_text(
        "import torch\n"
        "from accelerate import Accelerator\n"
        "accelerator = Accelerator()\n"
        "model = accelerator.prepare(torch.nn.Linear(64, 1000))\n"
        "logp = model(torch.randn(2, 64)).log_softmax(-1)\n"
    )
    assert [f.code for f in cached_lint(select=["MP001"]).findings] == ["MP001"]
    analysed.clear()
    assert [f.code for f in cached_lint(select=["MP001"]).findings] == ["MP001"]
    assert analysed == []
    config.write_text("distributed_type: DEEPSPEED\nmixed_precision: 'no'\n")
    assert cached_lint(select=["MP001"]).findings == ()
    assert analysed == ["pkg/rl.py"]


def test_a_helper_that_gains_a_word_reanalyses_the_units_that_judged_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable, analysed: list[str]
) -> None:
    # `describe()`, which nobody calls, calls `summary` from helpers.py, whose code mentions no rule's
    # word: judged from CPython's tree (never parsed) and not analysed. The unit still depends on
    # helpers.py: once `summary` mentions a word, `describe()` is worth analysing.
    monkeypatch.chdir(tmp_path)
    write_files(
        tmp_path,
        {
            "pkg/helpers.py": "def summary(model):\n    return str(model)\n",
            "pkg/train.py": (
                "import torch\n"
                "from pkg.helpers import summary\n\n\n"
                "def describe(model):\n"
                "    return summary(model)\n\n\n"
                "x = torch.zeros(2, dtype=torch.bfloat16)\n"
            ),
        },
    )
    cached_lint()
    helpers = tmp_path / "pkg/helpers.py"
    helpers.write_text(
        "import torch\n\n\ndef summary(model):\n    return torch.optim.AdamW(model.to(torch.bfloat16).parameters())\n"
    )
    analysed.clear()
    warm = cached_lint()
    assert sorted(analysed) == ["pkg/helpers.py", "pkg/train.py"]
    assert warm == api.lint_paths(["pkg"])


def sources_with(edits: dict[str, str]) -> list[SourceFile]:
    """The project's files as read from disk, with `edits` ({path: text}) standing in for some."""
    return [
        SourceFile(source.path, edits.get(source.path, source.text))
        for source in discover(["pkg"], api.settings_for("pkg", None, None, None))
    ]


def remembered_lint(memory: Memory, edits: dict[str, str] | None = None) -> list[Finding]:
    settings = api.settings_for("pkg", None, None, None)
    return api.lint_sources(sources_with(edits or {}), settings, memory=memory, unsaved=list(edits or {}))


def test_memory_reanalyses_only_the_units_that_read_an_unsaved_text(project: Path, analysed: list[str]) -> None:
    memory = Memory()
    remembered_lint(memory)
    analysed.clear()
    edited = (project / "pkg/models.py").read_text().replace("torch.bfloat16", "torch.float32")

    findings = remembered_lint(memory, {"pkg/models.py": edited})

    # train.py's unit read models.py; amp.py's did not and comes from memory.
    assert analysed == ["pkg/train.py"]
    assert [(f.path, f.code) for f in findings] == [("pkg/amp.py", "MP002"), ("pkg/broken.py", "MP000")]
    analysed.clear()
    assert remembered_lint(memory, {"pkg/models.py": edited}) == findings
    assert analysed == []


def test_results_of_unsaved_texts_stay_out_of_the_cache_directory(project: Path) -> None:
    edited = (project / "pkg/models.py").read_text().replace("torch.bfloat16", "torch.float32")
    remembered_lint(Memory(), {"pkg/models.py": edited})

    def entry(path: str) -> Path:
        return project / DIRECTORY / f"unit-{digest(path)[:32]}.json"

    # train.py's unit read the edited models.py: remembered only; amp.py's read saved files only.
    assert not entry("pkg/train.py").exists()
    assert entry("pkg/amp.py").exists()


# The whole-run snapshot.


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The display paths of the files a run reads from now on."""
    paths: list[str] = []
    read_source = api.read_source

    def recording(path: str, display: str | None = None) -> object:
        paths.append(display or path)
        return read_source(path, display)

    monkeypatch.setattr(api, "read_source", recording)
    monkeypatch.setattr(snapshot, "read_source", recording)
    return paths


@pytest.fixture
def exact_timestamps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem whose times are exact: a file written before the snapshot is not racy."""
    monkeypatch.setattr(snapshot, "_RACY_NS", 0)


@pytest.fixture
def coarse_timestamps(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """A filesystem that stamps every file with the same time (a tick longer than the test): a
    rewrite of the same size leaves the stat as it was. Call the result to start the tick."""
    tick = [0]

    def stamp(path: str) -> snapshot.Stamp | None:
        return (os.stat(path).st_size, tick[0], tick[0]) if os.path.exists(path) else None

    monkeypatch.setattr(snapshot, "_stamp", stamp)
    return lambda: tick.__setitem__(0, time.time_ns())


def test_a_run_over_unchanged_files_reads_none_and_finds_the_same(
    project: Path, analysed: list[str], files_read: list[str], exact_timestamps: None
) -> None:
    cold = cached_lint()
    assert sorted(analysed) == UNITS
    analysed.clear()
    files_read.clear()
    warm = cached_lint()
    assert (analysed, files_read) == ([], [])
    assert warm == cold
    assert located(warm) == EXPECTED
    assert [finding.fix for finding in warm.findings] == [finding.fix for finding in cold.findings]


def test_a_warm_run_does_not_import_libcst(project: Path) -> None:
    probe = "import sys; from mplint import api; api.lint_paths(['pkg'], cache=True); print('libcst' in sys.modules)"
    imported = [
        subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    ]
    assert imported == ["True\n", "False\n"]


def test_an_edited_file_is_checked_again(project: Path, analysed: list[str], exact_timestamps: None) -> None:
    cached_lint()
    analysed.clear()
    models = project / "pkg/models.py"
    models.write_text(models.read_text().replace("torch.bfloat16", "torch.float32"))
    assert located(cached_lint()) == [EXPECTED[0], EXPECTED[1]]
    assert analysed == ["pkg/train.py"]


def test_a_rewrite_within_one_timestamp_tick_is_compared_by_content(
    project: Path, analysed: list[str], coarse_timestamps: Callable[[], None]
) -> None:
    coarse_timestamps()
    cached_lint()
    analysed.clear()
    assert located(cached_lint()) == EXPECTED
    assert analysed == []  # the same content: the snapshot holds
    models = project / "pkg/models.py"
    before = models.read_text()
    models.write_text(before.replace("torch.bfloat16", "torch.float32 "))  # same size, same stamp
    assert len(models.read_text()) == len(before)
    assert located(cached_lint()) == [EXPECTED[0], EXPECTED[1]]


def test_an_old_file_is_trusted_by_its_stat(
    project: Path, files_read: list[str], coarse_timestamps: Callable[[], None]
) -> None:
    # Stamped long before the snapshot was taken: no file is read (the racy window is the tick).
    cached_lint()
    files_read.clear()
    cached_lint()
    assert files_read == []


def test_a_new_file_or_other_rules_are_another_run(project: Path, analysed: list[str], exact_timestamps: None) -> None:
    cached_lint()
    analysed.clear()
    cached_lint(select=["MP001"])
    assert sorted(analysed) == UNITS  # other rules: other entries too
    analysed.clear()
    (project / "pkg/extra.py").write_text("import torch\nx = torch.ones(2).half()\n")
    cached_lint()
    assert "pkg/extra.py" in analysed


def test_a_changed_data_file_the_analysis_read_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files: Callable, exact_timestamps: None
) -> None:
    # The accelerate launch config makes the engine bf16; the same config in fp32 leaves it quiet.
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, accelerate_project({"accelerate_config.yaml": DEEPSPEED_BF16}, bf16_logits=True))
    assert [finding.code for finding in api.lint_paths(["."], cache=True, select=["MP001"]).findings] == ["MP001"]
    config = tmp_path / "accelerate_config.yaml"
    config.write_text(config.read_text().replace("mixed_precision: 'bf16'", "mixed_precision: 'no'"))
    assert api.lint_paths(["."], cache=True, select=["MP001"]).findings == ()


def test_only_the_latest_snapshots_are_kept(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pre-commit hook runs over each commit's own files: one snapshot per command line.
    monkeypatch.setattr(snapshot, "_MOST_SNAPSHOTS", 2)
    results = {}
    for path in ["pkg/amp.py", "pkg/models.py", "pkg/train.py"]:
        results[path] = api.lint_paths([path], cache=True)
        time.sleep(0.01)  # distinct modification times
    assert len(list((project / DIRECTORY).glob("run-*.json"))) == 2
    files_read: list[str] = []
    monkeypatch.setattr(api, "read_source", lambda path, display=None: files_read.append(path))  # type: ignore[func-returns-value]
    monkeypatch.setattr(snapshot, "_RACY_NS", 0)
    assert api.lint_paths(["pkg/train.py"], cache=True) == results["pkg/train.py"]
    assert files_read == []  # the latest one is still there



def test_an_optimizer_another_unit_steps_with_master_weights_stays_refuted_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, analysed: list[str]
) -> None:
    """A unit's entry keeps the optimizers its framework steps with fp32 masters: a warm run that
    reads every entry back still drops the module's MP003."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg/model.py"
    module.write_text(
        "import torch\nimport lightning as L\n\n\nclass Lit(L.LightningModule):\n"
        "    def __init__(self):\n        super().__init__()\n"
        "        self.net = torch.nn.Linear(8, 8).bfloat16()\n\n"
        "    def configure_optimizers(self):\n        return torch.optim.AdamW(self.net.parameters())\n"
    )
    (tmp_path / "pkg/train.py").write_text(
        "import lightning as L\nfrom model import Lit\n\n"
        'L.Trainer(precision="bf16-mixed", strategy="deepspeed_stage_2").fit(Lit())\n'
    )
    assert cached_lint(select=["MP003"]).findings == ()
    forget_snapshots(tmp_path)
    analysed.clear()
    assert cached_lint(select=["MP003"]).findings == ()
    assert analysed == []  # both entries read back, what train.py's framework steps with them
