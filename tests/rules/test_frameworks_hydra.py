"""Hydra configs in the precision model: `@hydra.main` hands its function the config composed from the
repository's YAML files and the launch commands' overrides (`frameworks/hydra.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.analysis.frameworks.hydra import MISSING, yaml_mapping

from .casekit import check_files

# The entry point as HALOs (ContextualAI/HALOs, launch.py) writes it: the policy's dtype and the
# optimizer's class are config strings.
LAUNCH = """
import hydra
import torch
from omegaconf import DictConfig
from transformers import AutoModelForCausalLM


@hydra.main(version_base=None, config_path="config", config_name="config")
def main(config: DictConfig):
    policy = AutoModelForCausalLM.from_pretrained(
        config.model.name_or_path, torch_dtype=getattr(torch, config.model.policy_dtype)
    )
    optimizer = getattr(torch.optim, config.optimizer)(policy.parameters(), lr=config.lr){expect}


if __name__ == "__main__":
    main()
"""

PRIMARY = """\
# random seed
seed: 1
exp_name: ???
lr: 5e-6
optimizer: AdamW  # any class of torch.optim

defaults:
- _self_
- model: {model}
- loss: ???
"""

BASE_MODEL = """\
name_or_path: ???
# the dtype for the policy parameters/optimizer state
policy_dtype: bfloat16
reference_dtype: ${model.policy_dtype}
"""

# Each family's file starts from the common base (`- base_model` in its own folder).
LLAMA = "defaults:\n  - base_model\n\nname_or_path: meta-llama/Meta-Llama-3-8B\nblock_name: LlamaDecoderLayer\n"
QWEN = "defaults:\n  - base_model\n\nname_or_path: Qwen/Qwen2.5-7B\n"
PYTHIA = "defaults:\n  - base_model\n\nname_or_path: EleutherAI/pythia-1.4b\npolicy_dtype: float32\n"


def _repository(model: str = "???", commands: tuple[str, ...] = (), expect: bool = False) -> dict[str, str]:
    files = {
        "launch.py": LAUNCH.format(expect="  # expect: MP003" if expect else ""),
        "config/config.yaml": PRIMARY.format(model=model),
        "config/model/base_model.yaml": BASE_MODEL,
        "config/model/llama.yaml": LLAMA,
        "config/model/qwen.yaml": QWEN,
        "config/model/pythia.yaml": PYTHIA,
        "config/loss/dpo.yaml": "beta: 0.1\ntrainer: DPOTrainer\n",
        "config/loss/kto.yaml": "beta: 0.1\ntrainer: KTOTrainer\n",
    }
    for index, overrides in enumerate(commands):
        files[f"scripts/run_{index}.sh"] = (
            "#!/bin/bash\nEXP_NAME=run\n"
            f"accelerate launch --config_file accelerate_config/fsdp_8gpu.yaml \\\n    launch.py {overrides} "
            "exp_name=$EXP_NAME ++lr=1e-6\n"
        )
    return files


@pytest.mark.parametrize(
    ("model", "commands", "expect"),
    [
        pytest.param("???", ("loss=dpo model=llama train_datasets=[shp,hh]",), True, id="launched-model-group"),
        pytest.param(
            "???", ("loss=dpo model=llama", "loss=kto model=qwen"), True, id="families-agree-through-their-base"
        ),
        pytest.param("llama", (), True, id="primary-default-choice"),
        pytest.param("???", (), False, id="no-model-chosen"),
        pytest.param("???", ("loss=dpo model=pythia",), False, id="family-keeps-fp32"),
        pytest.param("???", ("loss=dpo model=llama", "loss=dpo model=pythia"), False, id="commands-disagree"),
        pytest.param("???", ("loss=dpo model=llama model.policy_dtype=float32",), False, id="value-overridden"),
    ],
)
def test_a_hydra_entry_point(model: str, commands: tuple[str, ...], expect: bool, tmp_path: Path) -> None:
    """The config of the configuration that runs: the groups the launch commands choose, merged over
    their defaults, with the commands' values over them; where commands compose configs that
    disagree, the setting is unknown."""
    check_files(_repository(model, commands, expect), "MP003", tmp_path)


def test_a_global_package_and_an_interpolated_dtype(tmp_path: Path) -> None:
    """An experiment file placed at the root (`# @package _global_`) sets a nested key, and a value
    read through an interpolation (`${model.policy_dtype}`) is the key it names."""
    files = _repository(expect=True)
    files["launch.py"] = files["launch.py"].replace("config.model.policy_dtype)", "config.model.reference_dtype)")
    files["config/experiment/bf16.yaml"] = "# @package _global_\nmodel:\n  policy_dtype: bfloat16\n"
    files["config/model/base_model.yaml"] = BASE_MODEL.replace("policy_dtype: bfloat16", "policy_dtype: float32")
    files["scripts/run.sh"] = "python launch.py model=qwen experiment=bf16\n"
    files["config/config.yaml"] = PRIMARY.format(model="???") + "- experiment: null\n"
    check_files(files, "MP003", tmp_path)


def test_a_config_hydra_cannot_find_is_unknown(tmp_path: Path) -> None:
    """A `config_name` the repository lacks composes nothing: the dtype stays unknown."""
    files = _repository("llama")
    files["launch.py"] = files["launch.py"].replace('config_name="config"', 'config_name="train"')
    check_files(files, "MP003", tmp_path)


# SakanaAI/self-adaptive-llms: the policy and the optimization algorithm are built by
# `hydra.utils.instantiate` from `_target_`s of the composed config; the algorithm's `__init__` builds
# Adam over the policy's bf16 vectors.
SVF_MAIN = """
    import hydra
    import torch

    from policy import Policy


    @hydra.main(version_base=None, config_path="cfgs", config_name="config")
    def main(cfg):
        policy: Policy = hydra.utils.instantiate(cfg.shakeoff_policy, base_params={}, gpu="cuda")
        algorithm = hydra.utils.instantiate(cfg.optimization_algorithm, policy=policy)
        algorithm.optimizer.step()


    if __name__ == "__main__":
        main()
"""
SVF_POLICY = """
    import torch


    class Policy(torch.nn.Module):
        def __init__(self, base_params, gpu, init_val, dtype="bf16"):
            super().__init__()
            self.learnable_params = {}
            for k, v in base_params.items():
                if "mlp" in k:
                    self.learnable_params[k] = torch.nn.Parameter(
                        data=torch.randn(min(v.shape), device=gpu, dtype={dtype}) * 0.01 + init_val,
                        requires_grad=True,
                    )
            self.trainable_params = list(self.learnable_params.values())
"""
SVF_ALGORITHM = """
    import torch


    class Reinforce(torch.nn.Module):
        def __init__(self, policy, lr, max_grad_norm):
            super().__init__()
            self.optimizer = torch.optim.Adam(policy.trainable_params, lr=lr){expect}
"""
SVF_CONFIG = """\
defaults:
  - _self_
  - policy@_global_: default
  - optimization@_global_: reinforce

lr: 2e-3
init_val: 0.1
"""


@pytest.mark.parametrize(
    ("target", "dtype", "expect"),
    [
        pytest.param("optim_modules.Reinforce", "torch.bfloat16", True, id="bf16-vectors"),
        pytest.param("optim_modules.Reinforce", "torch.float32", False, id="fp32-vectors"),
        pytest.param("somewhere_else.Reinforce", "torch.bfloat16", False, id="a-target-not-linted"),
        # `_partial_: true` hands back a functools.partial: nothing is built by this call.
        pytest.param("optim_modules.Reinforce\n  _partial_: true", "torch.bfloat16", False, id="partial"),
    ],
)
def test_instantiate_calls_the_target_of_the_config(target: str, dtype: str, expect: bool, tmp_path: Path) -> None:
    files = {
        "requirements.txt": "hydra-core\n",
        "svd_reinforce_hydra.py": SVF_MAIN,
        "policy/__init__.py": "from .base import Policy\n",
        "policy/base.py": SVF_POLICY.replace("{dtype}", dtype),
        "optim_modules.py": SVF_ALGORITHM.format(expect="  # expect: MP003" if expect else ""),
        "cfgs/config.yaml": SVF_CONFIG,
        "cfgs/policy/default.yaml": "shakeoff_policy:\n  _target_: policy.Policy\n  init_val: ${init_val}\n",
        "cfgs/optimization/reinforce.yaml": (
            f"optimization_algorithm:\n  _target_: {target}\n  lr: ${{lr}}\n  max_grad_norm: 1e-3\n"
        ),
    }
    check_files(files, "MP003", tmp_path)


def test_the_yaml_reader() -> None:
    """Block mappings and sequences at any depth, comments and quotes; what it does not read is missing."""
    data = yaml_mapping(
        "defaults:\n- _self_\n- model: llama   # the family\n- override loss: dpo\n"
        "trainer:\n  precision: 'bf16-mixed'\n  devices: 8\n  plugins:\n    - name: x\n      kind: y\n"
        'url: "http://host:80/#frag"\nprompt: |\n  a block\n  scalar\nlist: [a, b]\nempty:\n'
    )
    assert data["defaults"] == ["_self_", {"model": "llama"}, {"override loss": "dpo"}]
    assert data["trainer"] == {"precision": "bf16-mixed", "devices": "8", "plugins": [{"name": "x"}]}
    assert data["url"] == "http://host:80/#frag"
    assert data["prompt"] is MISSING
    assert data["list"] == "[a, b]"  # a flow list: missing once the config is composed
    assert data["empty"] is None


def test_an_experiment_overrides_the_model_group(tmp_path: Path) -> None:
    """An experiment the command picks chooses the model (`- override /model: llama` in its own
    defaults list) for the primary's `- model: ???`, before anything merges; positional
    `config_path` and `config_name` name the primary config."""
    files = _repository(expect=True)
    files["launch.py"] = files["launch.py"].replace(
        'version_base=None, config_path="config", config_name="config"', '"config", "config"'
    )
    files["config/config.yaml"] = PRIMARY.format(model="???") + "- experiment: null\n"
    files["config/experiment/dpo_llama.yaml"] = "# @package _global_\ndefaults:\n  - override /model: llama\n"
    files["scripts/run.sh"] = "python launch.py experiment=dpo_llama\n"
    check_files(files, "MP003", tmp_path)
    files["scripts/run.sh"] = "python launch.py experiment=dpo_llama model=pythia\n"  # the command line wins
    files["launch.py"] = files["launch.py"].replace("  # expect: MP003", "")
    check_files(files, "MP003", tmp_path)
