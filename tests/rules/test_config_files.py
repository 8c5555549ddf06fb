"""A training script's own config file is configuration: `yaml.safe_load(open(path))`, `json.load`,
`OmegaConf.load(path)` with the path a literal or an option's default read the repository's file
(YAML's top-level keys and one level below), so a dtype written there is known; a script whose only
low-precision word is in that file is still analysed (`engine.Run.plan`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.api import lint_paths
from mplint.findings import Severity

from .casekit import check_files

YAML_TRAIN = """
    import argparse

    import torch
    import torch.nn.functional as F
    import yaml
    from transformers import AutoModelForCausalLM


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--config", default="configs/grpo.yaml")
        args = parser.parse_args()
        with open(args.config) as f:
            cfg = yaml.safe_load(f)
        dtype = getattr(torch, cfg["model"]["dtype"])
        policy = AutoModelForCausalLM.from_pretrained(cfg["model"]["name"], torch_dtype=dtype)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg["training"]["lr"])  # MARK MP003
        logits = policy(input_ids).logits
        return F.log_softmax(logits, dim=-1)  # MARK MP001


    if __name__ == "__main__":
        main()
"""

OMEGACONF_TRAIN = """
    import torch
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM

    cfg = OmegaConf.load("configs/sft.yaml")
    policy = AutoModelForCausalLM.from_pretrained(cfg.model.name, torch_dtype=getattr(torch, cfg.model.dtype))
    optimizer = torch.optim.SGD(policy.parameters(), lr=cfg.training.lr)  # MARK MP003
"""

JSON_TRAIN = """
    import json

    import torch
    from transformers import AutoModelForCausalLM

    config = json.load(open("train_config.json"))
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[config["precision"]]
    policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=dtype)
    optimizer = torch.optim.AdamW(policy.parameters())  # MARK MP003
"""

GRPO_YAML = "model:\n  name: Qwen/Qwen2.5-0.5B\n  dtype: {dtype}\ntraining:\n  lr: 1e-6\n"


def project(train: str, configs: dict[str, str], code: str, bug: bool) -> dict[str, str]:
    marked = train.replace(f"# MARK {code}", f"# expect: {code}" if bug else "")
    return {"train.py": marked.replace("# MARK MP001", "").replace("# MARK MP003", ""), **configs}


CASES = [
    pytest.param(YAML_TRAIN, {"configs/grpo.yaml": GRPO_YAML.format(dtype="bfloat16")}, True, id="yaml"),
    pytest.param(YAML_TRAIN, {"configs/grpo.yaml": GRPO_YAML.format(dtype="float32")}, False, id="yaml-fp32"),
    pytest.param(YAML_TRAIN, {}, False, id="no-such-file"),
    pytest.param(OMEGACONF_TRAIN, {"configs/sft.yaml": GRPO_YAML.format(dtype="bfloat16")}, True, id="omegaconf"),
    pytest.param(JSON_TRAIN, {"train_config.json": '{"precision": "bf16", "lr": 1e-5}'}, True, id="json"),
    pytest.param(JSON_TRAIN, {"train_config.json": '{"precision": "fp32"}'}, False, id="json-fp32"),
]


@pytest.mark.parametrize(("train", "configs", "bug"), CASES)
@pytest.mark.parametrize("code", ["MP001", "MP003"])
def test_a_config_file_the_script_reads_is_configuration(
    train: str, configs: dict[str, str], bug: bool, code: str, tmp_path: Path
) -> None:
    check_files(project(train, configs, code, bug and f"# MARK {code}" in train), code, tmp_path)


def test_json_strings_stay_strings_and_yaml_words_are_read_as_yaml(tmp_path: Path) -> None:
    # JSON's "no" is the string "no" (an accelerate-style setting), YAML's `no` is False.
    train = """
        import json

        import torch
        from transformers import AutoModelForCausalLM

        config = json.load(open("train_config.json"))
        dtype = torch.float32 if config["mixed_precision"] == "no" else torch.bfloat16
        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=dtype)
        optimizer = torch.optim.AdamW(policy.parameters())
    """
    check_files({"train.py": train, "train_config.json": '{"mixed_precision": "no"}'}, "MP003", tmp_path)


# The ddpo family's configuration (kvablack/ddpo-pytorch, d3po): `config/base.py` builds a ConfigDict
# attribute by attribute, and the script reads it through absl's FLAGS.
DDPO_CONFIG = """
import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.use_lora = {use_lora}
    config.mixed_precision = "fp16"
    config.train = train = ml_collections.ConfigDict()
    train.learning_rate = 3e-4
    config.pretrained = ml_collections.ConfigDict()
    config.pretrained.model = "runwayml/stable-diffusion-v1-5"
    return config
"""

DDPO_TRAIN = """
import torch
from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "config/base.py", "Training configuration.")


def main(_):
    config = FLAGS.config
    unet = torch.nn.Linear(8, 8).half()
    if config.use_lora:
        trainable = torch.nn.Linear(8, 8)
    else:
        trainable = unet
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=config.train.learning_rate){expect}


if __name__ == "__main__":
    app.run(main)
"""


@pytest.mark.parametrize(
    ("use_lora", "expect"),
    [
        pytest.param("False", "  # expect: MP003", id="full-fine-tune-by-default"),
        pytest.param("True", "  # expect: MP003", id="lora-by-default-full-fine-tune-a-warning"),
    ],
)
def test_an_ml_collections_config_file_flag(use_lora: str, expect: str, tmp_path: Path) -> None:
    """`FLAGS.config` of a `DEFINE_config_file` flag is what its default file's `get_config()` returns,
    with the attributes set on it, nested ones included: the branch the default configuration takes
    is reported as an error; the other one as a warning naming its condition."""
    files = {
        "config/base.py": DDPO_CONFIG.format(use_lora=use_lora),
        "scripts/train.py": DDPO_TRAIN.format(expect=expect),
    }
    check_files(files, "MP003", tmp_path)
    [finding] = lint_paths([tmp_path], select=["MP003"]).findings
    assert ("only when `config.use_lora` is false" in finding.message) is (use_lora == "True")


@pytest.mark.parametrize(
    "filled",
    [
        pytest.param("    cfg.train = EasyDict()\n    cfg.train.half = {half}\n", id="nested-attribute"),
        pytest.param("    cfg.train = train = EasyDict()\n    train.half = {half}\n", id="through-an-alias"),
    ],
)
def test_a_record_of_settings_returned_holds_what_was_set_on_it(filled: str, tmp_path: Path) -> None:
    """`cfg = EasyDict()` filled attribute by attribute and returned reads back those settings, set
    through the record it holds or a name bound to it; a setting never made stays unknown (both
    branches joined, no finding)."""
    helper = "from easydict import EasyDict\n\n\ndef get_cfg():\n    cfg = EasyDict()\n" + filled + "    return cfg\n"
    train = (
        "import torch\nfrom cfg import get_cfg\n\ncfg = get_cfg()\nmodel = torch.nn.Linear(8, 8)\n"
        "if cfg.train.{flag}:\n    model = model.half()\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1){expect}\n"
    )
    marked = "  # expect: MP003"
    check_files(
        {"cfg.py": helper.format(half="True"), "train.py": train.format(flag="half", expect=marked)},
        "MP003",
        tmp_path / "set",
    )
    check_files(
        {"cfg.py": helper.format(half="True"), "train.py": train.format(flag="other", expect="")},
        "MP003",
        tmp_path / "unset",
    )


# NX-AI/xlstm's experiments/main.py: the config's text read by hand and handed to `OmegaConf.create`,
# its autocast dtype picked from a table by a config field (`configured_alternative`).
CONFIG_TEXT_TRAIN = """
    from argparse import ArgumentParser

    import torch
    from omegaconf import OmegaConf

    torch_dtype_map = {{"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}}


    def main(cfg):
        model = torch.nn.Linear(64, 64).to(device=cfg.training.device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.training.lr)
        for inputs in loader:
            with torch.autocast(device_type=cfg.training.device, dtype=torch_dtype_map[cfg.training.amp_precision]):{expect}
                loss = model(inputs).square().mean()
            loss.backward()
            optimizer.step()


    if __name__ == "__main__":
        parser = ArgumentParser()
        parser.add_argument("--config", default="parity.yaml")
        args = parser.parse_args()
        with open(args.config, "r", encoding="utf8") as fp:
            config_yaml = fp.read()
        cfg = OmegaConf.create({created})
        main(cfg)
"""


@pytest.mark.parametrize(
    ("precision", "created", "bug"),
    [
        pytest.param("float16", "config_yaml", True, id="fp16-from-the-file's-text"),
        # The table offers float16: a warning for the configuration that picks it.
        pytest.param("bfloat16", "config_yaml", True, id="bf16-from-the-file's-text"),
        pytest.param("float16", '"training: {amp_precision: float16}"', False, id="a-literal-text-is-no-file-name"),
    ],
)
def test_a_config_created_from_a_file_text(precision: str, created: str, bug: bool, tmp_path: Path) -> None:
    train = CONFIG_TEXT_TRAIN.format(created=created, expect="  # expect: MP002" if bug else "")
    config = f"training:\n  device: cuda\n  lr: 0.001\n  amp_precision: {precision}\n"
    check_files({"main.py": train, "parity.yaml": config}, "MP002", tmp_path)


COCONUT_CONFIG = """
import torch
import yaml


class Config:
    # to access a dict with object.key
    def __init__(self, dictionary):
        self.__dict__ = dictionary


with open("args/train.yaml") as f:
    configs = Config(yaml.safe_load(f))
model = torch.nn.Linear(8, 8).cuda()
if configs.bf16:
    model.to(torch.bfloat16)
optimizer = torch.optim.AdamW(model.parameters(), lr=configs.lr)
"""


@pytest.mark.parametrize(("bf16", "condition"), [("True", None), ("False", "only when `configs.bf16` is true")])
def test_a_record_whose_attributes_are_the_config_s_items(bf16: str, condition: str | None, tmp_path: Path) -> None:
    """coconut's `Config`: `self.__dict__ = dictionary` makes each item of the loaded file an
    attribute, so the file's `bf16` decides the configuration that runs (the other one warns)."""
    (tmp_path / "args").mkdir()
    (tmp_path / "args/train.yaml").write_text(f"lr: 1e-5\nbf16: {bf16}\n")
    (tmp_path / "train.py").write_text(COCONUT_CONFIG)

    [finding] = lint_paths([tmp_path], select=["MP003"]).findings

    assert finding.line == 17
    assert (finding.severity is Severity.WARNING) == (condition is not None)
    assert condition is None or condition in finding.message


# transformers' examples (run_clm.py) and their copies (LOMO, MambaInLlama, Firefly): the dataclasses'
# fields read from the file a command gives as its first argument.
HF_FILE_TRAIN = """
    import os
    import sys
    from dataclasses import dataclass, field

    import torch
    from transformers import AutoModelForCausalLM, HfArgumentParser, TrainingArguments


    @dataclass
    class ModelArguments:
        model_name_or_path: str = field(default="Qwen/Qwen2.5-0.5B")
        torch_dtype: str = field(default="auto")


    def main():
        parser = HfArgumentParser((ModelArguments, TrainingArguments))
        if {test}:
            model_args, training_args = parser.{method}(os.path.abspath(sys.argv{index}))
        else:
            model_args, training_args = parser.parse_args_into_dataclasses()
        dtype = model_args.torch_dtype if model_args.torch_dtype in ("auto", None) else getattr(torch, model_args.torch_dtype)
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, torch_dtype=dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=training_args.learning_rate)  # MARK MP003


    if __name__ == "__main__":
        main()
"""
RUN_CLM = {"test": 'len(sys.argv) == 2 and sys.argv[1].endswith(".json")', "method": "parse_json_file", "index": "[1]"}
LOMO = {"test": 'sys.argv[-1].endswith(".yaml")', "method": "parse_yaml_file", "index": "[-1]"}
BF16_JSON = '{"model_name_or_path": "Qwen/Qwen2.5-0.5B", "torch_dtype": "bfloat16", "learning_rate": 1e-5, "bf16": true}'
BF16_YAML = "model_name_or_path: Qwen/Qwen2.5-0.5B\ntorch_dtype: bfloat16\nlearning_rate: 1.0e-5\n"
FP32_YAML = BF16_YAML.replace("bfloat16", "float32")


@pytest.mark.parametrize(
    ("shape", "files", "bug"),
    [
        pytest.param(RUN_CLM, {"recipes/full.json": BF16_JSON, "README.md": "python train.py recipes/full.json\n"}, True, id="json"),
        pytest.param(LOMO, {"config/args.yaml": BF16_YAML, "run.sh": "deepspeed --include localhost:0 train.py config/args.yaml\n"}, True, id="yaml"),
        pytest.param(LOMO, {"config/args.yaml": FP32_YAML, "run.sh": "python train.py config/args.yaml\n"}, False, id="yaml-fp32"),
        # Started plainly, `sys.argv` is the script alone: the dataclasses' defaults ("auto").
        pytest.param(RUN_CLM, {"recipes/full.json": BF16_JSON}, False, id="no-command"),
        # A command giving options besides the file: what `sys.argv` holds is not told.
        pytest.param(LOMO, {"config/args.yaml": BF16_YAML, "run.sh": "python train.py --seed 1 config/args.yaml\n"}, False, id="more-words"),
    ],
)
def test_a_config_file_given_as_the_first_argument_of_an_hf_argument_parser(
    shape: dict[str, str], files: dict[str, str], bug: bool, tmp_path: Path
) -> None:
    train = HF_FILE_TRAIN.replace("{test}", shape["test"]).replace("{method}", shape["method"]).replace("{index}", shape["index"])
    check_files(project(train, files, "MP003", bug), "MP003", tmp_path)
