"""The options a repository's launch commands give a script (mplint/analysis/launch_options.py): how
a command's words are read (`scripts/train.sh`, a README's `$ python train.py --fp16`), which files
are read to tell (a cached run's dependencies), how a `--config` recipe is read, which commands are
configurations of their own and how each is named, and which scripts the prefilter must analyse
because their precision comes from outside their code. The end-to-end cases (a rule's finding on a
linted repository) are in tests/rules/test_launch_options.py; these pin the facts beneath them."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from mplint.analysis.launch_options import (
    LaunchOptions,
    _options,
    function_options,
    options_of,
    outside_code,
)
from tests.rules.casekit import check_files
from tests.rules.test_console_scripts import repository as trainkit_repository
from tests.rules.test_launch_options import ARGPARSE_TRAIN as RULES_ARGPARSE_TRAIN

# A plain argparse script: `--bf16` loads the policy in bf16, and AdamW then steps bf16 weights.
ARGPARSE_TRAIN = RULES_ARGPARSE_TRAIN.replace("# MARK", "# expect: MP003")

# An open-r1 recipe, as TRL's `TrlParser` reads it with `--config`.
RECIPE = textwrap.dedent(
    """
    model_name_or_path: Qwen/Qwen2.5-1.5B-Instruct
    torch_dtype: {dtype}
    bf16: true
    learning_rate: 4.0e-05
    gradient_checkpointing_kwargs:
      use_reentrant: false
    """
)


def write(root: Path, files: Mapping[str, str]) -> None:
    """The repository `files` (relative path -> text) laid out under `root`."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text), encoding="utf-8")


def launched(root: Path, files: Mapping[str, str], script: str = "train.py") -> LaunchOptions:
    """What the launch commands among `files` give `script`, the repository laid out under `root`."""
    write(root, {script: "print('train')\n", **files})
    return options_of(str(root / script), str(root))


# How the words of one command are read.


@pytest.mark.parametrize(
    "command",
    [
        "nohup python train.py --lr 2e-6 --bf16 > logs/train.log 2>&1 &",
        "torchrun --nproc_per_node 8 train.py --lr 2e-6 --bf16 2>&1 | tee logs/train.log",
        "deepspeed train.py --lr 2e-6 --bf16 | tee logs/train.log",
        "python train.py --lr 2e-6 --bf16 && python eval.py --bf16 false",
        "python train.py --lr 2e-6 --bf16 >> logs/train.log",
    ],
)
def test_a_flag_before_a_redirection_or_a_pipe_is_given_alone(command: str, tmp_path: Path) -> None:
    """`--bf16 > train.log` gives `--bf16` alone: the redirection, the pipe, the next command end the
    options and are no flag's value (a flag read as `">"` is no boolean, and the default stood)."""
    found = launched(tmp_path, {"scripts/train.sh": f"#!/bin/bash\n{command}\n"})
    assert found.options == {"lr": "2e-6", "bf16": True}


def test_a_flag_before_a_redirection_configures_the_script(tmp_path: Path) -> None:
    """The bug the case above pins, end to end: `nohup python train.py --bf16 > train.log` runs the
    script in bf16, and AdamW over its bf16 weights is reported."""
    files = {
        "train.py": ARGPARSE_TRAIN,
        "scripts/train.sh": "#!/bin/bash\nnohup python train.py --lr 2e-6 --bf16 > logs/train.log 2>&1 &\n",
    }
    check_files(files, "MP003", tmp_path)


def test_a_flag_named_by_a_variable_is_no_option() -> None:
    """`--$PRECISION` (a variable no literal was assigned to) names no option that can be told."""
    assert _options(["--$PRECISION", "--lr", "1e-5"]) == {"lr": "1e-5"}


def test_a_line_naming_the_script_without_a_launcher_is_no_command(tmp_path: Path) -> None:
    """A README's prose naming `train.py` starts nothing: only a line with an interpreter or a
    launcher before the script is a command (else it would give no options, and the commands would
    agree on none)."""
    readme = "Edit train.py to change the model; then run:\n\n```bash\n$ python train.py --bf16\n```\n"
    assert launched(tmp_path, {"README.md": readme}).options == {"bf16": True}


# The files read to tell (what a cached run depends on).


def test_only_launch_files_naming_the_script_are_read(tmp_path: Path) -> None:
    """A W&B sweep in JSON names the script too, but JSON is no launch file: it is not read (nor is a
    README that names another script)."""
    found = launched(
        tmp_path,
        {
            "scripts/train.sh": "torchrun train.py --bf16 True --deepspeed ds.json\n",
            "sweeps/lr.json": '{"program": "train.py", "method": "grid"}\n',
            "README.md": "$ python eval.py --fp16\n",
        },
    )
    assert found.read == (str(tmp_path / "scripts/train.sh"),)
    assert found.options == {"bf16": "True", "deepspeed": "ds.json"}


def test_only_launch_files_naming_the_console_script_are_read(tmp_path: Path) -> None:
    """For a console script's function: the launch files that name the script are read (beside the
    package's declaration), not a JSON file naming it, nor a launch file naming it not."""
    files = trainkit_repository("trainkit finetune_lora microsoft/phi-2 --precision bf16-true", bug=False)
    files["scripts/prepare.sh"] = "python scripts/download.py --repo_id microsoft/phi-2\n"
    files["benchmarks/runs.json"] = '{"command": "trainkit finetune_lora --precision 16-true"}\n'
    write(tmp_path, files)
    found = function_options(str(tmp_path / "trainkit/finetune/lora.py"), "setup", str(tmp_path))
    assert found is not None
    launch_files = [path for path in found.read if not path.endswith(("pyproject.toml", ".py"))]
    assert launch_files == [str(tmp_path / "README.md")]


# A console script of a single function (jsonargparse's `auto_cli(train)`): `trainkit --precision x`.
SINGLE_ENTRY = """
    from jsonargparse import auto_cli


    def train(precision: str = "32-true", out_dir: str = "out"):
        pass


    def main():
        auto_cli(train)
"""


@pytest.mark.parametrize(
    ("readme", "expected"),
    [
        pytest.param(
            "```bash\npip install trainkit\nCUDA_VISIBLE_DEVICES=0 trainkit --precision bf16-true\n```\n",
            {"precision": "bf16-true"},
            id="variables-before-the-script-and-an-install-line",
        ),
        pytest.param(
            "```bash\nOUT_DIR=out/trainkit\n$ trainkit --precision bf16-true --out_dir $OUT_DIR\n```\n",
            {"precision": "bf16-true", "out_dir": "out/trainkit"},
            id="an-assignment-naming-the-script",
        ),
        pytest.param(
            "With no arguments it lists its commands:\n\n```bash\n$ trainkit\n```\n\n"
            "```bash\n$ trainkit --precision bf16-true\n```\n",
            {},
            id="the-script-alone-runs-with-the-defaults",
        ),
    ],
)
def test_a_console_command_starts_with_the_script_s_name(
    readme: str, expected: dict[str, object], tmp_path: Path
) -> None:
    """A command of a console script is a line whose first word (past a prompt and variables assigned
    for it) is the script's name: `pip install trainkit` is none, and neither is `OUT_DIR=out/trainkit`."""
    files = trainkit_repository("", bug=False, **{"trainkit/__main__.py": SINGLE_ENTRY, "README.md": readme})
    write(tmp_path, files)
    found = function_options(str(tmp_path / "trainkit/__main__.py"), "train", str(tmp_path))
    assert found is not None
    assert found.options == expected


def test_a_script_of_subcommands_given_none_runs_none(tmp_path: Path) -> None:
    """`$ trainkit` alone (it lists its subcommands) runs no function: the command of
    `finetune_lora` is the only one, and its options stand."""
    readme = (
        "With no arguments it lists its commands:\n\n```bash\n$ trainkit\n```\n\n"
        "```bash\n$ trainkit finetune_lora microsoft/phi-2 --precision bf16-true\n```\n"
    )
    write(tmp_path, trainkit_repository("", bug=False, **{"README.md": readme}))
    found = function_options(str(tmp_path / "trainkit/finetune/lora.py"), "setup", str(tmp_path))
    assert found is not None
    assert found.options == {"precision": "bf16-true"}


# A `--config` file.


def test_a_json_config_is_the_script_s_own_not_a_recipe(tmp_path: Path) -> None:
    """`--config configs/gpt2.json` names a config the script reads in code (a model's): it is not
    read as a recipe whose settings are options."""
    found = launched(
        tmp_path,
        {
            "configs/gpt2.json": '{"torch_dtype": "bfloat16", "n_layer": 12}\n',
            "scripts/train.sh": "python train.py --config configs/gpt2.json --lr 3e-4\n",
        },
    )
    assert found.configured == {"config": "configs/gpt2.json", "lr": "3e-4"}
    assert found.read == (str(tmp_path / "scripts/train.sh"),)


def test_a_recipe_s_settings_are_its_scalars_and_no_environment(tmp_path: Path) -> None:
    """A recipe's block mapping (`gradient_checkpointing_kwargs:`) sets no option as a whole, and its
    `env:` sets environment variables (TRL), even written as a flow mapping."""
    recipe = RECIPE.format(dtype="bfloat16") + "env: {ACCELERATE_MIXED_PRECISION: bf16}\n"
    found = launched(
        tmp_path,
        {"recipes/sft.yaml": recipe, "scripts/train.sh": "python train.py --config recipes/sft.yaml\n"},
    )
    assert found.configured == {
        "model_name_or_path": "Qwen/Qwen2.5-1.5B-Instruct",
        "torch_dtype": "bfloat16",
        "bf16": "true",
        "learning_rate": "4.0e-05",
        "config": "recipes/sft.yaml",
    }


# Configurations of their own, and how each is named.


def conditions(found: LaunchOptions) -> list[str]:
    return [condition for condition, _ in found.alternatives]


def test_a_difference_the_command_line_brings_is_named_by_its_launch_file(tmp_path: Path) -> None:
    """Two scripts naming the same recipe (which leaves the dtype to the code), one giving
    `--torch_dtype bfloat16` over it: that configuration is named by the launch file that gives it,
    not by the recipe both name."""
    recipe = RECIPE.replace("torch_dtype: {dtype}\n", "")
    found = launched(
        tmp_path,
        {
            "recipes/sft.yaml": recipe,
            "scripts/sft.sh": "python train.py --config recipes/sft.yaml\n",
            "scripts/sft_bf16.sh": "python train.py --config recipes/sft.yaml --torch_dtype bfloat16\n",
        },
    )
    assert conditions(found) == ["launched as in `scripts/sft_bf16.sh`"]


def test_two_configurations_of_one_readme_are_one_alternative_the_first(tmp_path: Path) -> None:
    """A README starting the script in bf16 and in fp16 (and plainly): both are named by the README,
    which stands for the first of them."""
    readme = "```bash\n$ python train.py\n$ python train.py --bf16\n$ python train.py --fp16\n```\n"
    found = launched(tmp_path, {"README.md": readme})
    assert conditions(found) == ["launched as in `README.md`"]
    assert found.alternatives[0][1].options == {"bf16": True}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        # The option's name says nothing of precision; its value does.
        ("--ds_config configs/ds_zero3_bf16.json", {"ds_config": "configs/ds_zero3_bf16.json"}),
        # `amp` as a word of the name (timm's `--amp`, `--use_amp`).
        ("--use_amp", {"use_amp": True}),
    ],
)
def test_an_option_of_precision_by_its_value_or_an_amp_word(
    flags: str, expected: dict[str, object], tmp_path: Path
) -> None:
    """A command giving an option of precision the others do not is a configuration of its own."""
    found = launched(
        tmp_path,
        {"scripts/train.sh": "python train.py --epochs 3\n", "scripts/train_fast.sh": f"python train.py {flags}\n"},
    )
    assert conditions(found) == ["launched as in `scripts/train_fast.sh`"]
    assert found.alternatives[0][1].options == expected


def test_an_option_naming_no_precision_is_no_configuration(tmp_path: Path) -> None:
    """`--example_count` holds `amp` but not as a word: commands disagreeing on it are one run."""
    found = launched(
        tmp_path,
        {"scripts/a.sh": "python train.py --example_count 8\n", "scripts/b.sh": "python train.py --example_count 16\n"},
    )
    assert found.alternatives == ()


@pytest.mark.parametrize(
    ("default", "bug"),
    [
        pytest.param("None", False, id="no-default-the-launcher-s"),
        pytest.param('"no"', True, id="a-default-of-its-own"),
    ],
)
def test_choices_of_an_option_without_a_default_are_the_launcher_s(default: str, bug: bool, tmp_path: Path) -> None:
    """diffusers' `--mixed_precision` with `choices=["no", "fp16", "bf16"]` and no default: accelerate's
    config decides, and its choices are no configurations of the script (with a default of its own,
    `--mixed_precision bf16` is one)."""
    script = f"""
import argparse
import torch
parser = argparse.ArgumentParser()
parser.add_argument("--mixed_precision", default={default}, choices=["no", "fp16", "bf16"])
args = parser.parse_args()
weight_dtype = {{"fp16": torch.float16, "bf16": torch.bfloat16}}.get(args.mixed_precision, torch.float32)
model = torch.nn.Linear(8, 8).to(weight_dtype)
optimizer = torch.optim.AdamW(model.parameters()){"  # expect: MP003" if bug else ""}
"""
    check_files({"train.py": script}, "MP003", tmp_path)


# The scripts whose precision comes from outside their code (the prefilter's question).

TRIGGERS = frozenset({"bf16", "bfloat16", "fp16", "float16"})


def outside(
    root: Path, files: Mapping[str, str], scripts: tuple[str, ...] = ("train.py",)
) -> tuple[set[str], tuple[str, ...]]:
    """`outside_code` over `scripts` of the repository `files` laid out under `root`, relative paths."""
    write(root, files)
    codes = {str(root / script): (root / script).read_text() for script in scripts}
    found, read = outside_code(str(root), codes, TRIGGERS)
    return {os.path.relpath(path, root) for path in found}, tuple(os.path.relpath(path, root) for path in read)


def test_only_launch_files_that_start_python_are_read_for_the_prefilter(tmp_path: Path) -> None:
    """A README with no `.py` in it starts no script, and a JSON file is no launch file."""
    found, read = outside(
        tmp_path,
        {
            "train.py": "print('train')\n",
            "README.md": "Install with `pip install -e .`, then see scripts/.\n",
            "sweeps/lr.json": '{"command": "python train.py --bf16"}\n',
            "scripts/train.sh": "torchrun train.py --bf16 True --deepspeed ds.json\n",
        },
    )
    assert found == {"train.py"}
    assert read == ("scripts/train.sh",)


def test_an_accelerate_command_of_a_module_or_another_script_is_not_the_script_s(tmp_path: Path) -> None:
    """`accelerate launch -m lm_eval` starts no script file, and `accelerate launch eval.py` another
    one: neither brings the analysed script its precision, and the config of neither is read."""
    zero3 = "compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\nmixed_precision: bf16\n"
    found, read = outside(
        tmp_path,
        {
            "train.py": "print('train')\n",
            "configs/zero3.yaml": zero3,
            "scripts/eval.sh": (
                "accelerate launch --config_file configs/zero3.yaml -m lm_eval --model hf\n"
                "accelerate launch --config_file configs/zero3.yaml eval.py --model_path out/\n"
                "python train.py --lr 1e-5\n"
            ),
        },
    )
    assert found == set()
    assert read == ("scripts/eval.sh",)


def test_a_config_a_script_names_is_found_at_the_root_of_a_repository_without_markers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online-RLHF's layout (no marker of a root: its README beside `sft/` and `configs/`), linted
    from elsewhere: `"configs/sft.yaml"` in `sft/train.py` is found at the run's root, not the working
    directory's."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    root = tmp_path / "Online-RLHF"
    train = 'import yaml\n\nconfig = yaml.safe_load(open("configs/sft.yaml"))\n'
    files = {"README.md": "# Online RLHF\n", "sft/train.py": train, "configs/sft.yaml": "torch_dtype: bfloat16\n"}
    found, read = outside(root, files, scripts=("sft/train.py",))
    assert found == {"sft/train.py"}
    assert read == ("configs/sft.yaml",)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param("- `python train.py --bf16 --lr 2e-6`", {"bf16": True, "lr": "2e-6"}, id="a-list-item"),
        pytest.param("`python train.py --bf16 --lr 2e-6`.", {"bf16": True, "lr": "2e-6"}, id="a-line-of-its-own"),
        pytest.param("A README's `python train.py --bf16` is read too.", {}, id="an-example-in-a-sentence"),
    ],
)
def test_a_command_in_a_readme_s_code_span_is_read(line: str, expected: dict[str, object], tmp_path: Path) -> None:
    """A command a README writes in a code span, as a line or a list item of its own."""
    found = launched(tmp_path, {"README.md": f"Train with:\n\n{line}\n"})
    assert found.options == expected


DPO_RECIPES = {"recipes/dpo_bf16.yaml": "bfloat16", "recipes/dpo_fp32.yaml": "float32"}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("recipes/dpo_*", DPO_RECIPES, id="each-file-it-matches"),
        pytest.param("recipes/sft_*", {}, id="none-matching"),
    ],
)
def test_a_config_named_by_a_shell_pattern_is_each_file_it_matches(
    pattern: str, expected: dict[str, str], tmp_path: Path
) -> None:
    """`--config recipes/dpo_*`: one command per recipe it matches, each a configuration of its own."""
    files = {name: f"torch_dtype: {dtype}\n" for name, dtype in DPO_RECIPES.items()}
    found = launched(tmp_path, {**files, "run.sh": f"python train.py --config {pattern}\n"})
    configured = {condition: options.configured.get("torch_dtype") for condition, options in found.alternatives}
    assert configured == {f"launched with `--config {name}`": dtype for name, dtype in expected.items()}


# FlagEmbedding's example scripts: the options in quoted variables, spread into a command held in another.
OPTIONS_IN_VARIABLES = """\
num_train_epochs=4
model_args="\\
    --model_name_or_path BAAI/bge-m3 \\
    --cache_dir $HF_HUB_CACHE \\
"
training_args="\\
    --output_dir ./out \\
    --fp16 \\
    --num_train_epochs $num_train_epochs \\
    --deepspeed {deepspeed} \\
"
cmd="torchrun --nproc_per_node 2 train.py \\
    $model_args \\
    $training_args \\
"
eval $cmd
"""


def test_options_held_in_quoted_variables_are_the_command_s(tmp_path: Path) -> None:
    """`training_args="--fp16 --num_train_epochs $num_train_epochs ..."` spread into `cmd="torchrun
    train.py $model_args $training_args"`: the options the variable holds, its own variables
    substituted; one holding a variable of unknown value (`$HF_HUB_CACHE`) gives nothing."""
    script = OPTIONS_IN_VARIABLES.format(deepspeed="ds_stage0.json")
    found = launched(tmp_path, {"run.sh": script, "ds_stage0.json": "{}"})
    expected = {"output_dir": "./out", "fp16": True, "num_train_epochs": "4", "deepspeed": "ds_stage0.json"}
    assert found.options == expected


def test_a_config_named_from_the_command_s_folder_is_named_from_the_root(tmp_path: Path) -> None:
    """A script run from its own folder names `../../ds_stage0.json`, a README at the root names
    `examples/ds_stage0.json`: one file, so the commands agree on it, named from the root."""
    files = {
        "examples/ds_stage0.json": "{}",
        "examples/finetune/m3/run.sh": OPTIONS_IN_VARIABLES.format(deepspeed="../../ds_stage0.json"),
        "README.md": "```bash\ntorchrun train.py --fp16 --deepspeed examples/ds_stage0.json\n```\n",
    }
    found = launched(tmp_path, files)
    assert found.options == {"fp16": True, "deepspeed": os.path.join("examples", "ds_stage0.json")}
