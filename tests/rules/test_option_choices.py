"""An argparse option of precision that lists its choices (`--precision` with `choices=["amp",
"pure_bf16", ...]`) documents configurations besides its default: each choice of low precision is a
run of its own (`launch_options.choice_alternatives`), whose findings name it ("only when `--precision
pure_bf16` is given"). Only choices listed literally count, and only where the code's own tests on the
value take another branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.analysis.launch_options import MOST_ALTERNATIVES, LaunchOptions, choice_alternatives

from .casekit import check_files

# open_clip's layout: the options in params.py, the model's precision set in the factory, the
# optimizer built in main.py.
PARAMS = """
    import argparse


    def parse_args(args):
        parser = argparse.ArgumentParser()
        parser.add_argument("--lr", type=float, default=5e-4)
        parser.add_argument(
            "--precision",
            choices={choices},
            default="{default}",
            help="Floating point precision.",
        )
        parser.add_argument("--opt", choices=["adamw", "sgd"], default="adamw")
        return parser.parse_args(args)
"""
FACTORY = """
    import torch
    from torch import nn


    def convert_weights_to_lp(model: nn.Module, dtype=torch.float16):
        def _convert_weights(module):
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                module.weight.data = module.weight.data.to(dtype)

        model.apply(_convert_weights)


    def create_model(name: str, precision: str = "fp32", device="cpu"):
        model = nn.Sequential(nn.Linear(512, 512), nn.GELU(), nn.Linear(512, 512))
        model.to(device=device)
        if precision in ("fp16", "bf16"):
            dtype = torch.float16 if "fp16" in precision else torch.bfloat16
            convert_weights_to_lp(model, dtype=dtype)
        elif precision in ("pure_fp16", "pure_bf16"):
            dtype = torch.float16 if "fp16" in precision else torch.bfloat16
            model.to(dtype=dtype)
        return model
"""
MAIN = """
    import sys

    import torch

    from factory import create_model
    from params import parse_args


    def main(args):
        args = parse_args(args)
        model = create_model("ViT-B-32", precision=args.precision, device="cuda")
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=args.lr){expect}


    if __name__ == "__main__":
        main(sys.argv[1:])
"""
OPEN_CLIP_CHOICES = '["amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16", "pure_bf16", "pure_fp16", "fp32"]'


def repository(choices: str, default: str, *, bug: bool, **more: str) -> dict[str, str]:
    return {
        "params.py": PARAMS.format(choices=choices, default=default),
        "factory.py": FACTORY,
        "main.py": MAIN.format(expect="  # expect: MP003" if bug else ""),
        **more,
    }


@pytest.mark.parametrize(
    ("choices", "default", "bug"),
    [
        pytest.param(OPEN_CLIP_CHOICES, "amp_bf16", True, id="a-pure-choice"),
        pytest.param('["amp", "amp_bf16", "fp32"]', "amp", False, id="no-choice-of-half-weights"),
        pytest.param('sorted(["amp", "pure_bf16"])', "amp", False, id="choices-not-listed"),
        pytest.param('("pure_bf16", "amp")', "amp", True, id="a-tuple"),
        pytest.param('["pure_bf16", "amp"]', "pure_bf16", True, id="the-default-itself"),
    ],
)
def test_each_listed_choice_of_low_precision_is_a_configuration(
    choices: str, default: str, bug: bool, tmp_path: Path
) -> None:
    check_files(repository(choices, default, bug=bug), "MP003", tmp_path)


def test_the_finding_names_the_choice(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    check_files(repository(OPEN_CLIP_CHOICES, "amp_bf16", bug=True), "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert finding.message.endswith("(only when `--precision pure_bf16` is given: not in the default configuration)")


def test_a_choice_every_launch_command_gives_is_the_default(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    launch = {"scripts/train.sh": "torchrun --nproc_per_node 8 main.py --precision pure_bf16 --lr 1e-3\n"}
    check_files(repository(OPEN_CLIP_CHOICES, "amp_bf16", bug=True, **launch), "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert "only when" not in finding.message


def test_choices_are_read_in_order_past_the_default_s_spellings_and_bounded() -> None:
    choices = ("amp", "amp_bf16", "amp_bfloat16", "bf16", "fp16", "pure_bf16", "pure_fp16", "fp32")
    launched = LaunchOptions({"lr": "1e-3"}, (), configured={"lr": "1e-3"})
    found = choice_alternatives("--precision", "precision", "amp_bf16", choices, launched)
    assert [condition for condition, _ in found] == [
        "`--precision bf16` is given",
        "`--precision fp16` is given",
        "`--precision pure_bf16` is given",
    ]
    assert len(found) == MOST_ALTERNATIVES
    assert found[0][1].options == {"lr": "1e-3", "precision": "bf16"}


@pytest.mark.parametrize(
    ("flag", "dest", "choices"),
    [
        ("--opt", "opt", ("adamw", "sgd", "lion_fp16_state")),  # no option of precision
        ("--dtype", "dtype", ("float32", "float64")),  # no low precision among them
    ],
)
def test_choices_of_no_low_precision_are_no_configuration(flag: str, dest: str, choices: tuple[str, ...]) -> None:
    assert choice_alternatives(flag, dest, choices[0], choices, LaunchOptions({}, ())) == ()


# timm's train.py: a dtype option with no `choices`, default None for "float32", read by name.
TIMM_TRAIN = """
    import argparse

    import torch
    from timm import create_model

    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dtype", {option}, help="Model dtype override (non-AMP) (default: float32)")
    parser.add_argument("--lr", type=float, default=None)


    def main():
        args = parser.parse_args()
        device = torch.device("cuda")
        model_dtype = None
        if args.model_dtype:
            assert args.model_dtype in ("float32", "float16", "bfloat16")
            model_dtype = getattr(torch, args.model_dtype)
        model = create_model("resnet50")
        model.to(device=device, dtype=model_dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr){expect}


    if __name__ == "__main__":
        main()
"""


@pytest.mark.parametrize(
    ("option", "bug"),
    [
        pytest.param("default=None, type=str", True, id="none-default"),
        pytest.param('default="float32"', True, id="a-name-default"),
        pytest.param("default=None, type=parse_dtype", False, id="read-by-a-function"),
        pytest.param('default=None, choices=["float32", "float64"]', False, id="choices-of-its-own"),
        pytest.param('default=None, choices=["float32", "bfloat16"]', True, id="listed-choices"),
        pytest.param('default=None, action="store"', False, id="an-action"),
    ],
)
def test_a_dtype_option_without_choices_is_run_with_bfloat16(option: str, bug: bool, tmp_path: Path) -> None:
    source = TIMM_TRAIN.format(option=option, expect="  # expect: MP003" if bug else "")
    check_files({"train.py": source}, "MP003", tmp_path)


def test_the_dtype_option_s_finding_names_bfloat16(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    source = TIMM_TRAIN.format(option="default=None, type=str", expect="  # expect: MP003")
    check_files({"train.py": source}, "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert finding.message.endswith("(only when `--model-dtype bfloat16` is given: not in the default configuration)")


def test_an_option_of_precision_not_naming_a_dtype_is_not_given_a_name(tmp_path: Path) -> None:
    source = TIMM_TRAIN.format(option='default="float32", type=str', expect="")
    source = source.replace("--model-dtype", "--model-precision").replace("args.model_dtype", "args.model_precision")
    check_files({"train.py": source}, "MP003", tmp_path)
