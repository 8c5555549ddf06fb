"""The configuration that runs by default (mplint/analysis/configuration.py): what argparse's
`parse_args()` holds when the script is started as its repository's launch commands start it, typed
as the option's `type=` reads the command's text. Each case is a repository laid out on disk and
linted, the finding (or its condition) telling which configuration ran."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mplint.api import lint_paths

# An option typed by `type=int` with no default: `--fp16 1` turns half precision on, `--fp16 0` off.
INT_FLAG_TRAIN = """
    import argparse

    import torch


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--fp16", type=int, help="1 to train in half precision")
        parser.add_argument("--lr", type=float, default=3e-4)
        args = parser.parse_args()
        model = torch.nn.Linear(512, 512).cuda()
        if args.fp16:
            model = model.half()
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)


    if __name__ == "__main__":
        main()
"""


def test_an_option_s_type_reads_the_command_s_text(tmp_path: Path) -> None:
    """`torchrun train.py --fp16 0` gives `type=int`'s option the number 0 (false), not the text "0"
    (true): the half-precision branch is not the default run, its finding is conditional."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "train.py").write_text(textwrap.dedent(INT_FLAG_TRAIN))
    (tmp_path / "scripts/train.sh").write_text("#!/bin/bash\ntorchrun --nproc_per_node 8 train.py --fp16 0 --lr 1e-4\n")
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert finding.message.endswith("(only when `args.fp16` is true: not in the default configuration)")


# open_clip's layout (tests/rules/test_option_choices.py), its `--precision` choices spelled with a short
# flag first, or taken as a positional argument.
OPEN_CLIP_CHOICES = '["amp", "amp_bf16", "pure_bf16", "fp32"]'


def _open_clip(tmp_path: Path, precision_argument: str) -> list[str]:
    """The MP003 messages of open_clip's layout whose precision option is declared by `precision_argument`."""
    from tests.rules.test_option_choices import PARAMS, repository

    params = PARAMS.format(choices=OPEN_CLIP_CHOICES, default="amp").replace('"--precision",', precision_argument)
    for name, text in repository(OPEN_CLIP_CHOICES, "amp", bug=True, **{"params.py": params}).items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    return [finding.message for finding in lint_paths([tmp_path], select=["MP003"]).findings]


def test_a_choice_is_named_by_the_option_s_long_flag(tmp_path: Path) -> None:
    """`add_argument("-p", "--precision", choices=[...])`: the configuration of a choice is named as
    a command gives it with the long flag, `--precision pure_bf16`."""
    (message,) = _open_clip(tmp_path, '"-p", "--precision",')
    assert message.endswith("(only when `--precision pure_bf16` is given: not in the default configuration)")


def test_the_choices_of_a_positional_argument_are_no_configuration(tmp_path: Path) -> None:
    """`python main.py pure_bf16`: a positional argument has no flag to name a configuration by; its
    choices are not read as runs of their own (only the default, `amp`, runs: fp32 weights)."""
    assert _open_clip(tmp_path, '"precision", nargs="?",') == []


def test_a_console_command_s_options_are_the_function_s_arguments_where_it_takes_them(tmp_path: Path) -> None:
    """litgpt's shape (tests/rules/test_console_scripts.py): `trainkit finetune_lora ... --precision
    bf16-true` runs `setup(precision="bf16-true")`; a flag given alone (`--compile`) is no value
    jsonargparse takes and an option of a nested group (`--train.epochs 1`) no parameter of the
    function: both leave the call as it is, and AdamW over the bf16 weights is reported."""
    from tests.rules.casekit import check_files
    from tests.rules.test_console_scripts import LORA, repository

    lora = LORA.replace("lora_r: int = 8,\n", "lora_r: int = 8,\n        compile: bool = False,\n")
    command = "trainkit finetune_lora microsoft/phi-2 --precision bf16-true --compile --train.epochs 1"
    files = repository(command, bug=True, **{"trainkit/finetune/lora.py": lora.replace("# MARK", "# expect: MP003")})
    files["README.md"] = f"```bash\n{command}\n```\n"
    check_files(files, "MP003", tmp_path)


def test_a_yaml_config_written_as_json_keeps_its_typed_values(tmp_path: Path) -> None:
    """A `.yaml` file written as JSON (a generated config: YAML reads JSON too) arrives typed
    (`true` a bool): only text is read as YAML reads it, and the bf16 it names is known."""
    from tests.rules.casekit import check_files

    train = """
        import torch
        import yaml
        from transformers import AutoModelForCausalLM

        with open("configs/train.yaml") as handle:
            config = yaml.safe_load(handle)
        dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[config["precision"]]
        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=dtype)
        optimizer = torch.optim.AdamW(policy.parameters(), fused=config["fused_adam"])  # expect: MP003
    """
    config = '{"precision": "bf16", "fused_adam": true, "warmup_steps": 100}\n'
    check_files({"train.py": train, "configs/train.yaml": config}, "MP003", tmp_path)


def test_a_json_null_is_none(tmp_path: Path) -> None:
    """`"fp16_opt_level": null` in the script's JSON config is None: `is not None` is false in the
    default run, and the half cast it guards is another configuration's (a conditional finding)."""
    train = """
        import json

        import torch

        config = json.load(open("train_config.json"))
        model = torch.nn.Linear(512, 512).cuda()
        if config["fp16_opt_level"] is not None:
            model = model.half()
        optimizer = torch.optim.AdamW(model.parameters(), lr=config["lr"])
    """
    (tmp_path / "train.py").write_text(textwrap.dedent(train))
    (tmp_path / "train_config.json").write_text('{"fp16_opt_level": null, "lr": 1e-4}\n')
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert '(only when `config["fp16_opt_level"] is not None` is true' in finding.message


def test_a_documented_choice_that_is_the_default_is_no_other_configuration() -> None:
    """`precision: Literal["bf16-true", "32-true"] = "bf16-true"`: the default runs by default; only the
    other low-precision choices would be configurations of their own (none here)."""
    import libcst as cst

    from mplint.analysis.configuration import _parameter_choices
    from mplint.analysis.launch_options import LaunchOptions

    source = 'def setup(precision: Literal["bf16-true", "bf16-mixed", "32-true"] = "bf16-true"):\n    pass\n'
    function = cst.ensure_type(cst.parse_module(source).body[0], cst.FunctionDef)
    assert [condition for condition, _ in _parameter_choices(function, LaunchOptions({}, ()))] == [
        "`--precision bf16-mixed` is given"
    ]
