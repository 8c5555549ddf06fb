"""A training script's own config file is configuration: `yaml.safe_load(open(path))`, `json.load`,
`OmegaConf.load(path)` with the path a literal or an option's default read the repository's file
(YAML's top-level keys and one level below), so a dtype written there is known; a script whose only
low-precision word is in that file is still analysed (`engine.Run.plan`)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
