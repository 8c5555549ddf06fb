"""A console script a package declares runs a function with the command line as its arguments
(`analysis.console_scripts`, jsonargparse's `CLI`): the recipe a command names with `--config` and the
options it gives are that function's arguments (`launch_options.function_options`). Commands that
disagree on precision are configurations of their own, reported as conditional; a recipe counts only
where a command of that function names it."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from mplint.analysis.console_scripts import console_scripts
from mplint.analysis.launch_options import function_options

from .casekit import check_files

PYPROJECT = """
    [project]
    name = "trainkit"
    version = "0.1.0"
    scripts.trainkit = "trainkit.__main__:main"
"""
ENTRY = """
    from jsonargparse import CLI

    from trainkit.finetune.lora import setup as finetune_lora_fn
    from trainkit.pretrain import setup as pretrain_fn

    COMMANDS = {
        "finetune_lora": finetune_lora_fn,
        "pretrain": pretrain_fn,
    }


    def main() -> None:
        CLI(COMMANDS)
"""
# litgpt's shape: the precision parameter falls back to a mixed default, the Fabric is built from it
# and runs the training function.
LORA = """
    from pathlib import Path

    import lightning as L
    import torch

    from trainkit.model import GPT


    def setup(
        checkpoint_dir: Path,
        out_dir: Path = Path("out/finetune/lora"),
        precision: str | None = None,
        devices: int = 1,
        lora_r: int = 8,
    ) -> None:
        precision = precision or "bf16-mixed"
        strategy = "fsdp" if devices > 1 else "auto"
        fabric = L.Fabric(devices=devices, strategy=strategy, precision=precision)
        fabric.launch(main, checkpoint_dir, out_dir, lora_r)


    def main(fabric: L.Fabric, checkpoint_dir: Path, out_dir: Path, lora_r: int) -> None:
        with fabric.init_module(empty_init=fabric.world_size > 1):
            model = GPT(lora_r)
        model = fabric.setup_module(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)  # MARK
        optimizer = fabric.setup_optimizers(optimizer)
"""
PRETRAIN = """
    import lightning as L
    import torch

    from trainkit.model import GPT


    def setup(model_name: str, precision: str = "bf16-mixed") -> None:
        fabric = L.Fabric(precision=precision)
        model = fabric.setup(GPT(0))
        optimizer = torch.optim.AdamW(model.parameters(), lr=6e-4)  # MARK
"""
MODEL = """
    import torch


    class GPT(torch.nn.Module):
        def __init__(self, lora_r: int):
            super().__init__()
            self.head = torch.nn.Linear(512, 32000)
"""
RECIPE = """
    # The path to the base model's checkpoint directory to load for finetuning. (type: <class 'Path'>)
    checkpoint_dir: checkpoints/meta-llama/Llama-2-7b-hf

    # The precision to use for finetuning. Possible choices: "bf16-true", "bf16-mixed", "32-true".
    precision: {precision}

    # If set, quantize the model with this algorithm. (type: Optional[Literal['nf4', 'fp4']], default: null)
    quantize:

    # How many devices/GPUs to use. (type: Union[int, str], default: 1)
    devices: 1

    # The LoRA rank. (type: int, default: 8)
    lora_r: 32

    # Training-related arguments. See ``litgpt.args.TrainArgs`` for details
    train:
      save_interval: 200
      micro_batch_size: 4
"""
# A README whose first command keeps the default precision: a recipe's is then another configuration.
README = """
    # Finetuning

    ```bash
    trainkit finetune_lora microsoft/phi-2
    ```

    With a recipe:

    ```bash
    {command}
    ```
"""


def repository(
    command: str, *, bug: bool, recipe: str = "bf16-true", pretrain_bug: bool = False, **changed: str
) -> dict[str, str]:
    files = {
        "pyproject.toml": PYPROJECT,
        "trainkit/__init__.py": "",
        "trainkit/__main__.py": ENTRY,
        "trainkit/finetune/__init__.py": "",
        "trainkit/finetune/lora.py": LORA.replace("# MARK", "# expect: MP003" if bug else ""),
        "trainkit/pretrain.py": PRETRAIN.replace("# MARK", "# expect: MP003" if pretrain_bug else ""),
        "trainkit/model.py": MODEL,
        "config_hub/finetune/llama-2-7b/lora.yaml": RECIPE.format(precision=recipe),
        "README.md": README.format(command=command),
    }
    files.update(changed)
    return files


@pytest.mark.parametrize(
    ("command", "bug"),
    [
        pytest.param("trainkit finetune_lora --config config_hub/finetune/llama-2-7b/lora.yaml", True, id="a-recipe"),
        pytest.param(
            "trainkit finetune_lora \\\n  --config config_hub/finetune/llama-2-7b/lora.yaml \\\n"
            "  --precision bf16-mixed",
            False,
            id="an-option-after-the-recipe-wins",
        ),
        pytest.param(
            "trainkit finetune_lora --precision bf16-mixed --config config_hub/finetune/llama-2-7b/lora.yaml",
            True,
            id="an-option-before-the-recipe-loses",
        ),
        pytest.param("$ trainkit finetune_lora microsoft/phi-2 --precision 16-true", True, id="an-option-alone"),
        pytest.param(
            "trainkit finetune_lora --config https://raw.githubusercontent.com/acme/trainkit/main/"
            "config_hub/finetune/llama-2-7b/lora.yaml",
            True,
            id="the-recipe-s-url",
        ),
        pytest.param(
            "python -m trainkit finetune_lora --config config_hub/finetune/llama-2-7b/lora.yaml",
            False,
            id="not-the-console-script",
        ),
        pytest.param(
            "trainkit finetune_lora --config config_hub/finetune/gone/lora.yaml",
            False,
            id="a-recipe-the-repository-lacks",
        ),
    ],
)
def test_the_command_line_is_the_function_s_arguments(command: str, bug: bool, tmp_path: Path) -> None:
    check_files(repository(command, bug=bug), "MP003", tmp_path)


def test_a_recipe_counts_for_the_subcommand_that_names_it(tmp_path: Path) -> None:
    command = "trainkit pretrain tiny-llama --config config_hub/finetune/llama-2-7b/lora.yaml"
    check_files(repository(command, bug=False, pretrain_bug=True), "MP003", tmp_path)


def test_a_recipe_of_another_configuration_is_named_in_the_finding(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    command = "trainkit finetune_lora --config config_hub/finetune/llama-2-7b/lora.yaml"
    check_files(repository(command, bug=True), "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    condition = "launched with `--config config_hub/finetune/llama-2-7b/lora.yaml`"
    assert finding.message.endswith(f"(only when {condition}: not in the default configuration)")


def test_a_recipe_every_command_names_is_the_default(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    readme = "```bash\ntrainkit finetune_lora --config config_hub/finetune/llama-2-7b/lora.yaml --train.epochs 1\n```\n"
    check_files(repository("", bug=True, **{"README.md": readme}), "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert "only when" not in finding.message


# Parameters that list their choices, as litgpt writes them: jsonargparse checks a `Literal`, and the
# finetuning scripts' docstrings name what `str | None` takes.
LITERAL_PRECISION = 'precision: Literal["bf16-true", "bf16-mixed", "32-true", None] = None,'
DOCUMENTED = '''
        """Finetune a model.

        Arguments:
            checkpoint_dir: The path to the base model's checkpoint directory.
            precision: The precision to use for finetuning. Possible choices: {choices}.
            devices: How many devices/GPUs to use.
        """
'''


def documented(choices: str) -> str:
    docstring = textwrap.indent(textwrap.dedent(DOCUMENTED), "        ").format(choices=choices)
    return LORA.replace("    ) -> None:\n", "    ) -> None:" + docstring, 1)


@pytest.mark.parametrize(
    ("lora", "bug"),
    [
        pytest.param(
            LORA.replace("precision: str | None = None,", LITERAL_PRECISION).replace(
                "    from pathlib import Path", "    from pathlib import Path\n    from typing import Literal"
            ),
            True,
            id="a-literal-annotation",
        ),
        pytest.param(documented('"bf16-true", "bf16-mixed", "32-true"'), True, id="a-docstring"),
        pytest.param(LORA, False, id="no-choices-listed"),
        pytest.param(documented('"32-true", "64-true"'), False, id="only-full-precision-choices"),
        pytest.param(
            documented('"bf16-true", "bf16-mixed"').replace("Possible choices", "Not the choices of `devices`"),
            False,
            id="no-choices-word",
        ),
    ],
)
def test_the_documented_choices_of_a_precision_parameter_are_configurations(
    lora: str, bug: bool, tmp_path: Path
) -> None:
    from mplint.api import lint_paths

    marked = lora.replace("# MARK", "# expect: MP003" if bug else "")
    check_files(repository("", bug=False, **{"trainkit/finetune/lora.py": marked}), "MP003", tmp_path)
    messages = [finding.message for finding in lint_paths([tmp_path], select=["MP003"]).findings]
    condition = "(only when `--precision bf16-true` is given: not in the default configuration)"
    assert all(message.endswith(condition) for message in messages)


def test_a_function_no_console_script_runs_has_no_choices_run(tmp_path: Path) -> None:
    lora = documented('"bf16-true", "bf16-mixed"').replace("# MARK", "")
    files = repository("", bug=False, **{"trainkit/finetune/lora.py": lora})
    files["pyproject.toml"] = PYPROJECT.replace("scripts.trainkit", "urls.trainkit")
    check_files(files, "MP003", tmp_path)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param({"pyproject.toml": PYPROJECT.replace("scripts.trainkit", "urls.trainkit")}, id="no-script"),
        pytest.param(
            {"trainkit/__main__.py": ENTRY.replace("from jsonargparse import CLI", "from trainkit.cli import CLI")},
            id="a-cli-of-its-own",
        ),
        pytest.param(
            {"trainkit/__main__.py": ENTRY.replace("CLI(COMMANDS)", "CLI(commands())")}, id="components-not-literal"
        ),
    ],
)
def test_only_a_declared_script_that_runs_jsonargparse_reads_the_command_line(
    changed: dict[str, str], tmp_path: Path
) -> None:
    command = "trainkit finetune_lora --config config_hub/finetune/llama-2-7b/lora.yaml"
    check_files(repository(command, bug=False, **changed), "MP003", tmp_path)


def test_recipes_that_agree_on_precision_are_one_configuration(tmp_path: Path) -> None:
    commands = "\n".join(
        f"trainkit finetune_lora --config config_hub/finetune/{model}/lora.yaml" for model in ("llama-2-7b", "phi-2")
    )
    files = repository(
        commands, bug=True, **{"config_hub/finetune/phi-2/lora.yaml": RECIPE.format(precision="bf16-true")}
    )
    check_files(files, "MP003", tmp_path)
    found = function_options(str(tmp_path / "trainkit/finetune/lora.py"), "setup", str(tmp_path))
    assert found is not None
    assert [condition for condition, _ in found.alternatives] == [
        "launched with `--config config_hub/finetune/llama-2-7b/lora.yaml`"
    ]
    assert found.configured == {}  # the first command gives none: nothing is the default


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(ENTRY, {"finetune_lora": "finetune/lora.py:setup", "pretrain": "pretrain.py:setup"}, id="a-dict"),
        pytest.param(
            "import jsonargparse\nfrom .pretrain import setup\n\ndef main():\n    jsonargparse.CLI([setup])\n",
            {"setup": "pretrain.py:setup"},
            id="a-list-named-by-function",
        ),
        pytest.param(
            "from jsonargparse import auto_cli\n\ndef train(precision='32-true'):\n    pass\n\n"
            "def main():\n    auto_cli(train)\n",
            {None: "__main__.py:train"},
            id="a-function-of-its-own",
        ),
    ],
)
def test_what_each_subcommand_runs(entry: str, expected: dict[str | None, str], tmp_path: Path) -> None:
    files = repository("", bug=False, **{"trainkit/__main__.py": entry})
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    runs = console_scripts(str(tmp_path)).scripts["trainkit"]
    package = tmp_path / "trainkit"
    assert {name: f"{os.path.relpath(path, package)}:{function}" for name, (path, function) in runs.items()} == expected
