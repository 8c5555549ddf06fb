"""accelerate launch configuration files in the precision model (accelerate 1.15.0: `commands/
config/config_args.py`, `commands/launch.py`, `state.py`, `accelerator.py` `_prepare_deepspeed`):
an `Accelerator()` without `mixed_precision=` takes the precision of the config file its script is
launched with (`accelerate launch --config_file X train.py` in a shell script or a README), or of the
repository's only accelerate config; under `distributed_type: DEEPSPEED` the prepared model is the
DeepSpeed engine's, cast to half with no autocast and no fp32 outputs, and the prepared optimizer
keeps fp32 master weights. Configs that disagree, none named for the script, are non-default
configurations: what they make half is reported as conditional, naming the config.

Cases are shaped after MOSS-RLHF (accelerate_config.yaml with DeepSpeed ZeRO-2 bf16 at the root,
train_ppo_en.sh launching train_ppo.py, log-probs in utils.py) and trlx (configs/accelerate/*.yaml:
ddp, zero2-bf16, zero2-fp16, zero3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.analysis.frameworks.accelerate_launch import launch_commands, scalars
from mplint.api import lint_paths
from mplint.findings import Severity
from mplint.repository import repository_of

from .casekit import check_files

DEEPSPEED_BF16 = """
compute_environment: LOCAL_MACHINE
deepspeed_config:
  gradient_accumulation_steps: 1
  offload_optimizer_device: none
  zero3_init_flag: false
  zero_stage: 2
distributed_type: DEEPSPEED
downcast_bf16: 'no'
fsdp_config: {}
machine_rank: 0
mixed_precision: 'bf16'  # ZeRO-2 in bfloat16
num_processes: 7
use_cpu: false
"""
MULTI_GPU_BF16 = """
compute_environment: LOCAL_MACHINE
deepspeed_config: {}
distributed_type: MULTI_GPU
downcast_bf16: no
mixed_precision: bf16
num_processes: 8
"""

LAUNCH = """
#!/bin/bash
CUDA_VISIBLE_DEVICES=0,1,2,3 \\
accelerate launch \\
    --config_file {config} {flags}\\
train_ppo.py \\
    --lr 5e-7 \\
&> outputs/log/ppo.log
"""

UTILS = """
import torch
import torch.nn.functional as F


def logprobs_from_logits(logits, labels):
    logp = F.log_softmax(logits, dim=-1){expect}
    return torch.gather(logp, dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)
"""

TRAIN = """
import torch
from accelerate import Accelerator
from transformers import AutoModelForCausalLM

from utils import logprobs_from_logits


class PPOTrainer:
    def __init__(self, policy_model, accelerator):
        self.accelerator = accelerator
        self.optimizer = torch.optim.AdamW(policy_model.parameters(), lr=5e-7){optimizer_expect}
        self.model, self.optimizer = self.accelerator.prepare(policy_model, self.optimizer)

    def train_step(self, batch):
        logits = self.model(input_ids=batch["input_ids"]).logits
        logprobs = logprobs_from_logits(logits[:, :-1, :], batch["input_ids"][:, 1:])
        self.accelerator.backward(-(logprobs * batch["advantages"]).mean())
        self.optimizer.step()


def main():
    accelerator = Accelerator(split_batches=True)
    policy = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b"{dtype})
    trainer = PPOTrainer(policy, accelerator)
    for batch in loader:
        trainer.train_step(batch)


if __name__ == "__main__":
    main()
"""


def project(
    configs: dict[str, str],
    launch: str | None = "accelerate_config.yaml",
    *,
    flags: str = "",
    bf16_logits: bool = False,
    bf16_weights: bool = False,
    optimizer_bug: bool = False,
) -> dict[str, str]:
    files = {
        **configs,
        "utils.py": UTILS.format(expect="  # expect: MP001" if bf16_logits else ""),
        "train_ppo.py": TRAIN.format(
            dtype=", torch_dtype=torch.bfloat16" if bf16_weights else "",
            optimizer_expect="  # expect: MP003" if optimizer_bug else "",
        ),
    }
    if launch is not None:
        files["train_ppo_en.sh"] = LAUNCH.format(config=launch, flags=flags)
    return files


def test_the_launch_config_makes_the_engine_bf16_and_its_logits_too(tmp_path: Path) -> None:
    check_files(project({"accelerate_config.yaml": DEEPSPEED_BF16}, bf16_logits=True), "MP001", tmp_path)


def test_the_message_names_the_launch_config(tmp_path: Path) -> None:
    check_files(project({"accelerate_config.yaml": DEEPSPEED_BF16}, bf16_logits=True), "MP001", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert "made bfloat16 by DeepSpeed (accelerate launch config accelerate_config.yaml)" in finding.message
    assert finding.severity is not Severity.WARNING


def test_the_engine_keeps_fp32_master_weights_for_the_prepared_optimizer(tmp_path: Path) -> None:
    # An optimizer over bf16-loaded weights, prepared under DeepSpeed: its engine steps fp32 copies.
    check_files(project({"accelerate_config.yaml": DEEPSPEED_BF16}, bf16_weights=True), "MP003", tmp_path)


def test_without_the_launch_config_the_prepared_optimizer_updates_bf16_weights(tmp_path: Path) -> None:
    check_files(project({}, launch=None, bf16_weights=True, optimizer_bug=True), "MP003", tmp_path)


def test_the_only_config_applies_without_a_launch_command(tmp_path: Path) -> None:
    check_files(project({"configs/accelerate.yaml": DEEPSPEED_BF16}, launch=None, bf16_logits=True), "MP001", tmp_path)


def test_a_config_beside_another_folders_scripts_is_theirs(tmp_path: Path) -> None:
    """SafeAILab/EAGLE: eagle/traineagle3/default_config.yaml (DeepSpeed) beside traineagle3's own
    main.py, named by no command, is not the launch of the accelerate trainer in another folder."""
    files = {
        **project({}, launch=None),
        "eagle3/default_config.yaml": DEEPSPEED_BF16,
        "eagle3/main.py": "import deepspeed\n",
        "requirements.txt": "accelerate\n",
    }
    check_files(files, "MP001", tmp_path)



def test_a_folder_of_configs_inside_another_project_is_that_project_s(tmp_path: Path) -> None:
    """FlagEmbedding: research/Long_LLM/activation_beacon (a project of its own, with a README) keeps its
    DeepSpeed configs in data/config/, a folder without Python files; they are not the launch of a
    trainer elsewhere in the repository. A folder of configs at the root (`configs/`) still is any
    script's (`test_the_only_config_applies_without_a_launch_command`)."""
    files = {
        **project({}, launch=None),
        "README.md": "# a monorepo\n",
        "research/beacon/README.md": "# beacon\n",
        "research/beacon/data/config/zero3.yaml": DEEPSPEED_BF16,
        "research/beacon/main/train.py": "import deepspeed\n",
        "tests/distributed/data/accelerate_configs/zero2.yaml": DEEPSPEED_BF16,  # a test's fixture (TRL)
        "requirements.txt": "accelerate\n",
    }
    check_files(files, "MP001", tmp_path)


QUIET = [
    pytest.param(
        {"accelerate_config.yaml": DEEPSPEED_BF16.replace("mixed_precision: 'bf16'", "mixed_precision: 'no'")},
        "accelerate_config.yaml",
        "",
        id="deepspeed-without-mixed-precision-keeps-fp32",
    ),
    pytest.param(
        {"accelerate_config.yaml": DEEPSPEED_BF16.replace("mixed_precision: 'bf16'", "")},
        "accelerate_config.yaml",
        "",
        id="a-config-without-mixed-precision-runs-no",
    ),
    pytest.param(
        {"accelerate_config.yaml": DEEPSPEED_BF16},
        "accelerate_config.yaml",
        "--mixed_precision no ",
        id="the-command-line-wins-over-the-config",
    ),
    pytest.param(
        {"accelerate_config.yaml": MULTI_GPU_BF16},
        "accelerate_config.yaml",
        "",
        id="plain-mixed-precision-returns-fp32-outputs",
    ),
    pytest.param({}, None, "", id="no-config-the-launch-decides"),
    pytest.param(
        {
            "deepspeed.yaml": DEEPSPEED_BF16,
            "ddp.yaml": MULTI_GPU_BF16,
            "other.sh": LAUNCH.format(config="deepspeed.yaml", flags="").replace("train_ppo.py", "train_sft.py"),
        },
        "ddp.yaml",
        "",
        id="the-config-the-script-is-launched-with-wins-over-another-scripts",
    ),
]


@pytest.mark.parametrize(("configs", "launch", "flags"), QUIET)
def test_configs_that_leave_the_logits_fp32_are_quiet(
    configs: dict[str, str], launch: str | None, flags: str, tmp_path: Path
) -> None:
    check_files(project(configs, launch, flags=flags), "MP001", tmp_path)


def test_a_config_no_command_names_is_another_way_to_launch_the_script(tmp_path: Path) -> None:
    """xfactlab/orpo: its scripts launch main.py with src/accelerate/fsdp.yaml; ds2.yaml (DeepSpeed
    ZeRO-2, bf16), shipped beside it and named by no command, runs the bf16 engine with no fp32 outputs."""
    configs = {"accelerate_config.yaml": DEEPSPEED_BF16, "ddp.yaml": MULTI_GPU_BF16}
    check_files(project(configs, "ddp.yaml", bf16_logits=True), "MP001", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert finding.severity is Severity.WARNING
    assert "only when launched with `accelerate launch --config_file` `accelerate_config.yaml`" in finding.message


def test_a_plain_config_without_mixed_precision_keeps_a_bf16_model_bf16(tmp_path: Path) -> None:
    # MULTI_GPU with "no": no autocast, no fp32 outputs: the bf16-loaded model's logits stay bf16.
    config = MULTI_GPU_BF16.replace("mixed_precision: bf16", "mixed_precision: no")
    check_files(project({"accelerate_config.yaml": config}, bf16_weights=True, bf16_logits=True), "MP001", tmp_path)


def test_configs_that_disagree_make_the_deepspeed_one_a_condition(tmp_path: Path) -> None:
    """trlx: configs/accelerate/ddp.yaml and zero2-bf16.yaml, the script launched with neither (the
    user's default config runs it): the DeepSpeed one's bf16 logits are a conditional finding."""
    configs = {"configs/accelerate/ddp.yaml": MULTI_GPU_BF16, "configs/accelerate/zero2-bf16.yaml": DEEPSPEED_BF16}
    check_files(project(configs, launch=None, bf16_logits=True), "MP001", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert finding.severity is Severity.WARNING
    assert (
        "(only when launched with `accelerate launch --config_file` `configs/accelerate/zero2-bf16.yaml`: "
        "not in the default configuration)"
    ) in finding.message


def test_a_launch_command_for_another_script_does_not_choose(tmp_path: Path) -> None:
    configs = {"ddp.yaml": MULTI_GPU_BF16, "zero2.yaml": DEEPSPEED_BF16}
    files = project(configs, launch=None, bf16_logits=True)
    files["README.md"] = "Reward model:\n\n    accelerate launch --config_file ddp.yaml train_rm.py\n"
    check_files(files, "MP001", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert finding.severity is Severity.WARNING


def test_a_readme_command_relative_to_its_folder_chooses(tmp_path: Path) -> None:
    # trlx's examples/hh/README.md: `accelerate launch --config_file ../../configs/... ppo_hh.py`.
    configs = {"configs/ddp.yaml": MULTI_GPU_BF16, "configs/zero2-bf16.yaml": DEEPSPEED_BF16}
    files = {f"examples/{name}": source for name, source in project({}, launch=None, bf16_logits=True).items()}
    files.update(configs)
    files["pyproject.toml"] = "[project]\nname = 'rlhf'\n"  # the repository's root, above the code linted
    files["examples/README.md"] = (
        "```bash\naccelerate launch --num_processes 7 --config_file ../configs/zero2-bf16.yaml train_ppo.py\n```\n"
    )
    check_files(files, "MP001", tmp_path)  # the run's root is examples/: the code's folder
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert finding.severity is not Severity.WARNING


def test_an_fp16_engine_scales_the_accelerator_backward(tmp_path: Path) -> None:
    config = DEEPSPEED_BF16.replace("'bf16'", "'fp16'")
    files = {
        "accelerate_config.yaml": config,
        "train.py": """
            import torch
            from accelerate import Accelerator

            accelerator = Accelerator()
            model, optimizer = accelerator.prepare(torch.nn.Linear(8, 8), optimizer)
            for x in loader:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(x).sum()
                accelerator.backward(loss)
                optimizer.step()
        """,
    }
    check_files(files, "MP002", tmp_path)


def test_unwrap_model_hands_back_the_prepared_model(tmp_path: Path) -> None:
    # MOSS-RLHF: `self.accelerator.unwrap_model(self.model).policy_model` after DeepSpeed's bf16 `prepare`.
    files = {
        "accelerate_config.yaml": DEEPSPEED_BF16,
        "train.py": """
            import torch
            import torch.nn.functional as F
            from accelerate import Accelerator

            class Policy(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.head = torch.nn.Linear(64, 1000)

                def forward(self, x):
                    return self.head(x)

            accelerator = Accelerator()
            model = accelerator.prepare(Policy())
            policy = accelerator.unwrap_model(model)
            logp = F.log_softmax(policy(torch.randn(2, 64)), dim=-1)  # expect: MP001
        """,
    }
    check_files(files, "MP001", tmp_path)


def test_the_yaml_reader_reads_top_level_scalars_and_one_nested_mapping() -> None:
    found = scalars(DEEPSPEED_BF16)
    assert found["distributed_type"] == "DEEPSPEED"
    assert found["mixed_precision"] == "bf16"
    assert found["downcast_bf16"] == "no"
    assert found["fsdp_config"] == {}
    assert found["deepspeed_config"] == {
        "gradient_accumulation_steps": "1",
        "offload_optimizer_device": "none",
        "zero3_init_flag": "false",
        "zero_stage": "2",
    }
    assert scalars('{"distributed_type": "MULTI_GPU", "mixed_precision": "fp16"}')["mixed_precision"] == "fp16"
    assert scalars("- a list\n- of things\n") == {}


def test_launch_commands_are_read_across_line_continuations() -> None:
    (command,) = launch_commands("train.sh", LAUNCH.format(config="zero2.yaml", flags="--mixed_precision=fp16 "))
    assert (command.script, command.config, command.precision) == ("train_ppo.py", "zero2.yaml", "fp16")
    (variable,) = launch_commands("run.sh", "accelerate launch --config_file $CONFIG_FILE $SCRIPT\n")
    assert (variable.script, variable.config) == (None, None)


def test_shell_variables_assigned_a_literal_are_read_in_launch_commands() -> None:
    """alpaca_farm's examples/scripts/rlhf_ppo.sh: `config_file="./examples/accelerate_configs/..."`,
    then `accelerate launch --config_file "${config_file}" examples/rlhf_ppo.py`."""
    script = """
output_dir=$1
config_file="./configs/fsdp_8gpu.yaml"
export SCRIPT=examples/rlhf_ppo.py
accelerate launch --config_file "${config_file}" $SCRIPT --output_dir "${output_dir}"
config_file=$2
accelerate launch --config_file $config_file --mixed_precision=$PRECISION train.py
"""
    first, second = launch_commands("rlhf_ppo.sh", script)
    assert (first.script, first.config) == ("examples/rlhf_ppo.py", "./configs/fsdp_8gpu.yaml")
    # Reassigned from a positional argument: unknown again; a variable never assigned stays unknown.
    assert (second.script, second.config, second.precision) == ("train.py", None, None)


def with_accelerator_subclass(files: dict[str, str], method: str) -> dict[str, str]:
    """The project with its Accelerator built from `class MyAccelerator(accelerate.Accelerator)`
    that defines `method` (alpaca_farm's accelerate_patch.py)."""
    subclass = f"import accelerate\n\n\nclass MyAccelerator(accelerate.Accelerator):\n{method}"
    train = files["train_ppo.py"].replace("from accelerate import Accelerator\n", subclass)
    return {
        **files,
        "train_ppo.py": train.replace("Accelerator(split_batches=True)", "MyAccelerator(split_batches=True)"),
    }


def test_an_accelerator_subclass_takes_the_launch_config(tmp_path: Path) -> None:
    files = project({"accelerate_config.yaml": DEEPSPEED_BF16}, bf16_logits=True)
    own_repr = "    def __repr__(self):\n        return 'Accelerator()'\n"
    check_files(with_accelerator_subclass(files, own_repr), "MP001", tmp_path)


def test_an_accelerator_subclass_with_its_own_prepare_is_not_known(tmp_path: Path) -> None:
    files = project({"accelerate_config.yaml": DEEPSPEED_BF16})
    own_prepare = "    def prepare(self, *args):\n        return args\n"
    check_files(with_accelerator_subclass(files, own_prepare), "MP001", tmp_path)


DEEPSPEED_FILE = """
compute_environment: LOCAL_MACHINE
deepspeed_config:
  deepspeed_config_file: configs/ds_config.json
  zero3_init_flag: false
distributed_type: DEEPSPEED
"""


# The DeepSpeed JSON config, whether the model is loaded in bf16, and whether its logits are bf16.
DEEPSPEED_FILES = [
    pytest.param('{"fp16": {"enabled": true}, "zero_optimization": {"stage": 2}}', False, True, id="its-fp16-wins"),
    # "auto" takes the launch's mixed precision, "no" here: the engine leaves a bf16 model bf16.
    pytest.param('{"bf16": {"enabled": "auto"}}', True, True, id="auto-takes-the-mixed-precision"),
    pytest.param(None, True, False, id="a-file-that-cannot-be-read-is-unknown"),
]


@pytest.mark.parametrize(("ds_config", "bf16_weights", "bf16_logits"), DEEPSPEED_FILES)
def test_a_deepspeed_config_file_named_by_the_launch_config(
    ds_config: str | None, bf16_weights: bool, bf16_logits: bool, tmp_path: Path
) -> None:
    """trlx's examples/summarize_rlhf: `deepspeed_config_file: configs/ds_config_trlx_gptj_summarize.json`
    (fp16 enabled), relative to the folder the example is launched from."""
    configs = {"configs/default_accelerate_config.yaml": DEEPSPEED_FILE}
    if ds_config is not None:
        configs["configs/ds_config.json"] = ds_config
    launch = "configs/default_accelerate_config.yaml"
    check_files(project(configs, launch, bf16_weights=bf16_weights, bf16_logits=bf16_logits), "MP001", tmp_path)


def test_a_deepspeed_launch_runs_the_engine_whatever_mixed_precision_the_code_passes(tmp_path: Path) -> None:
    # state.py: ACCELERATE_USE_DEEPSPEED=true makes the distributed type DEEPSPEED; the code's bf16
    # goes to the DeepSpeed config, not to autocast: no fp32 outputs.
    files = project({"accelerate_config.yaml": DEEPSPEED_BF16}, bf16_logits=True)
    files["train_ppo.py"] = files["train_ppo.py"].replace(
        "Accelerator(split_batches=True)", 'Accelerator(mixed_precision="bf16")'
    )
    check_files(files, "MP001", tmp_path)


# verifiers: `accelerate launch --config-file configs/zero3.yaml examples/grpo/train_gsm8k.py` (its
# README) runs a script whose code names no precision: the Trainer takes bf16 and DeepSpeed from the
# launcher's config, so the script is analysed for it (not when the config keeps fp32, nor when the
# command starts another script).
TRAINER_SUBCLASS = """
import torch
from transformers import Trainer


def selective_log_softmax(logits, index):
    logprobs = torch.log_softmax(logits, dim=-1){expect}
    return torch.gather(logprobs, -1, index.unsqueeze(-1)).squeeze(-1)


class GRPOTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        logits = model(input_ids=inputs["input_ids"]).logits
        return -selective_log_softmax(logits[:, :-1], inputs["input_ids"][:, 1:]).mean()
"""

WORDLESS_SCRIPT = """
import argparse

from transformers import AutoModelForCausalLM, TrainingArguments

from trainers.grpo_trainer import GRPOTrainer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--learning_rate", type=float, default=1e-6)
    parser.add_argument("--max_grad_norm", type=float, default=0.1)
    model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct")
    args = TrainingArguments(output_dir="outputs/gsm8k", **vars(parser.parse_args()))
    trainer = GRPOTrainer(model=model, args=args, train_dataset=dataset)
    trainer.train()


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("config", "launched", "reported"),
    [
        pytest.param(DEEPSPEED_BF16, "examples/train_gsm8k.py", True, id="bf16-deepspeed-config"),
        pytest.param(
            DEEPSPEED_BF16.replace("mixed_precision: 'bf16'", "mixed_precision: 'no'"),
            "examples/train_gsm8k.py",
            False,
            id="config-keeps-fp32",
        ),
        pytest.param(DEEPSPEED_BF16, "examples/evaluate.py", False, id="command-runs-another-script"),
    ],
)
def test_a_script_launched_under_a_16_bit_config_is_analysed_without_a_word_in_its_code(
    tmp_path: Path, config: str, launched: str, reported: bool
) -> None:
    files = {
        "pyproject.toml": '[project]\nname = "verifiers"\n',
        "configs/zero3.yaml": config,
        "README.md": f"Train:\n\n    accelerate launch --num-processes 2 --config-file configs/zero3.yaml {launched}\n",
        "trainers/__init__.py": "",
        "trainers/grpo_trainer.py": TRAINER_SUBCLASS.format(expect="  # expect: MP001" if reported else ""),
        "examples/train_gsm8k.py": WORDLESS_SCRIPT,
        "examples/evaluate.py": 'from transformers import pipeline\n\nprint(pipeline("text-generation")("2+2="))\n',
    }
    check_files(files, "MP001", tmp_path)


# RLHFlow/Online-RLHF: run_loop.sh launches the DPO script with configs/zero2.yaml; its SFT script is
# started by no command. The repository's only config still counts as the way to launch it: verifiers'
# examples share configs/zero3.yaml though their commands name only some of them (treating a config
# named for other scripts as theirs alone gave 8 false MP003 there, for Online-RLHF's one bug).
ONLINE_RLHF_SFT = """
from dataclasses import dataclass, field
from typing import Optional

import torch
from transformers import AutoModelForCausalLM, HfArgumentParser, TrainingArguments
from trl import SFTTrainer


@dataclass
class ScriptArguments:
    deepspeed: Optional[str] = field(default=None, metadata={{"help": "Path to deepspeed config if using deepspeed."}})
    model_name: Optional[str] = field(default="meta-llama/Meta-Llama-3-8B")
    bf16: Optional[bool] = field(default=True)
    optim: Optional[str] = field(default="paged_adamw_32bit")


parser = HfArgumentParser(ScriptArguments)
script_args = parser.parse_args_into_dataclasses()[0]
training_args = TrainingArguments(
    output_dir="./models/sft",
    deepspeed=script_args.deepspeed,
    bf16=script_args.bf16,
    optim=script_args.optim,
)
model = AutoModelForCausalLM.from_pretrained(script_args.model_name, torch_dtype=torch.bfloat16).to("cuda")
trainer = SFTTrainer(model=model, args=training_args, train_dataset=None){expect}
trainer.train()
"""

RUN_LOOP = """
#!/bin/bash
accelerate launch --config_file ./configs/zero2.yaml dpo_iteration/run_dpo.py ./configs/training.yaml
{sft_launch}
"""


@pytest.mark.parametrize(
    "sft_launch",
    [
        pytest.param("", id="the-config-named-for-another-script"),
        pytest.param(
            "accelerate launch --config_file ./configs/zero2.yaml sft/sft.py", id="the-sft-script-launched-too"
        ),
    ],
)
def test_a_script_no_command_launches_may_run_with_the_configs_of_others(sft_launch: str, tmp_path: Path) -> None:
    files = {
        "configs/zero2.yaml": DEEPSPEED_BF16,
        "run_loop.sh": RUN_LOOP.format(sft_launch=sft_launch),
        "dpo_iteration/run_dpo.py": "print('dpo')\n",
        "sft/sft.py": ONLINE_RLHF_SFT.format(expect=""),
    }
    check_files(files, "MP003", tmp_path)


def test_the_repository_of_a_script_without_root_markers(tmp_path: Path) -> None:
    """A run at a repository's root without markers (Online-RLHF: README.md beside sft/ and configs/)
    is that repository; a run over a folder of checkouts, which holds only them and the findings a
    run writes there (`mplint . > findings.json`), keeps each checkout apart."""
    repository = tmp_path / "Online-RLHF"
    (repository / "sft").mkdir(parents=True)
    (repository / "sft" / "sft.py").write_text("print('sft')\n")
    script = str(repository / "sft" / "sft.py")
    (tmp_path / "findings.json").write_text("")
    assert repository_of(script, str(repository)) == str(repository / "sft")
    assert repository_of(script, str(tmp_path)) == str(repository)
    (repository / "README.md").write_text("# Online RLHF\n")
    assert repository_of(script, str(repository)) == str(repository)


def test_a_command_held_in_a_variable_is_read() -> None:
    """cogvideox-factory's training/*.sh: `cmd="accelerate launch ... train.py \\ ..."` then `eval $cmd`,
    its quoted value running over a line that ends without a backslash."""
    script = """
ACCELERATE_CONFIG_FILE="accelerate_configs/uncompiled_1.yaml"
for lr in 1e-4; do
  cmd="accelerate launch --config_file $ACCELERATE_CONFIG_FILE training/sft.py \\
    --validation_prompt \\"A panda's guitar\\"
    --mixed_precision bf16 \\
    --learning_rate $lr"
  eval $cmd
done
"""
    (command,) = launch_commands("train.sh", script)
    assert (command.script, command.config) == ("training/sft.py", "accelerate_configs/uncompiled_1.yaml")
    (_, options), *_ = _script_options(script)
    assert options["mixed_precision"] == "bf16"


def _script_options(script: str) -> list[tuple[str, dict[str, object]]]:
    from mplint.analysis.launch_options import _read_commands

    return list(_read_commands(script))


# CogVideoX's trainers (cogvideox-factory, diffusers' examples): `weight_dtype` from the DeepSpeed
# config when the accelerator has a DeepSpeed plugin, else from its mixed precision; the script's own
# `--mixed_precision` (default None: the launch configuration's) handed to `Accelerator`.
COGVIDEOX = """
    import argparse

    import torch
    from accelerate import Accelerator
    from diffusers import CogVideoXTransformer3DModel


    def main(args):
        accelerator = Accelerator(mixed_precision=args.mixed_precision)
        transformer = CogVideoXTransformer3DModel.from_pretrained(args.model, subfolder="transformer")
        weight_dtype = torch.float32
        if accelerator.state.deepspeed_plugin:
            if accelerator.state.deepspeed_plugin.deepspeed_config["bf16"]["enabled"]:
                weight_dtype = torch.bfloat16
        elif accelerator.mixed_precision == "bf16":
            weight_dtype = torch.bfloat16
        transformer.to(accelerator.device, dtype=weight_dtype)
        params = list(filter(lambda p: p.requires_grad, transformer.parameters()))
        optimizer = torch.optim.AdamW(params, lr=1e-4){expect}
        transformer, optimizer = accelerator.prepare(transformer, optimizer)
        for batch in loader:
            accelerator.backward(transformer(batch).sample.float().mean())
            optimizer.step()


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--model", default="THUDM/CogVideoX-5b")
        parser.add_argument("--mixed_precision", default=None, choices=["no", "fp16", "bf16"])
        main(parser.parse_args())
"""
PLAIN_BF16 = "distributed_type: 'NO'\nmixed_precision: bf16\nnum_processes: 1\n"
DEEPSPEED_ZERO2 = "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\nmixed_precision: bf16\n"


@pytest.mark.parametrize(
    ("config", "command", "bug"),
    [
        pytest.param(PLAIN_BF16, "", True, id="the-launch-configuration-s-bf16"),
        pytest.param(PLAIN_BF16.replace("bf16", "fp16"), "--mixed_precision bf16", True, id="the-script-s-option"),
        pytest.param(DEEPSPEED_ZERO2, "", False, id="deepspeed-keeps-fp32-master-weights"),
    ],
)
def test_the_deepspeed_plugin_of_a_launch_configuration_without_deepspeed_is_none(
    config: str, command: str, bug: bool, tmp_path: Path
) -> None:
    files = {
        "train.py": COGVIDEOX.format(expect="  # expect: MP003" if bug else ""),
        "configs/one.yaml": config,
        "train.sh": f"accelerate launch --config_file configs/one.yaml train.py {command}\n",
    }
    check_files(files, "MP003", tmp_path)


REFERENCE_BY_TRL = """
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from transformers import AutoModelForCausalLM
from trl.trainer.utils import forward, prepare_deepspeed


class PPOTrainer:
    def __init__(self, ref_policy, accelerator):
        self.accelerator = accelerator
        if ref_policy:
            self.ref_policy = ref_policy
        else:
            self.ref_policy = None
        self.is_deepspeed_enabled = getattr(self.accelerator.state, "deepspeed_plugin", None) is not None
        if self.is_deepspeed_enabled:
            self.ref_policy = prepare_deepspeed(self.ref_policy, 4, False, True)
        else:
            self.ref_policy = self.ref_policy.to(self.accelerator.device)

    def reference_logprobs(self, query_responses, responses):
        with torch.no_grad():
            ref_logits = forward(self.ref_policy, query_responses, pad_token_id).logits
            ref_all_logprobs = F.log_softmax(ref_logits, dim=-1){expect}
        return torch.gather(ref_all_logprobs, 2, responses.unsqueeze(-1)).squeeze(-1)


def main():
    ref_policy = AutoModelForCausalLM.from_pretrained("gpt2")
    trainer = PPOTrainer(ref_policy, Accelerator())
    for query_responses, responses in loader:
        kl = logprobs - trainer.reference_logprobs(query_responses, responses)


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("config", "bf16_logits"),
    [pytest.param(DEEPSPEED_BF16, True, id="deepspeed-bf16"), pytest.param(MULTI_GPU_BF16, False, id="ddp-bf16")],
)
def test_trl_prepare_deepspeed_runs_the_reference_in_the_launch_s_precision(
    config: str, bf16_logits: bool, tmp_path: Path
) -> None:
    """HuatuoGPT-o1's copy of TRL's PPO trainer keeps the reference policy it is given (a module is
    true), and where the accelerator's state holds a DeepSpeed plugin (under its ZeRO-3 bf16 launch)
    hands it to TRL's `prepare_deepspeed`, a DeepSpeed engine over the plugin's config: bf16. Under
    a DDP launch it only moves the fp32 reference to the device."""
    files = {
        "accelerate_config.yaml": config,
        "train_ppo_en.sh": LAUNCH.format(config="accelerate_config.yaml", flags=""),
        "train_ppo.py": REFERENCE_BY_TRL.format(expect="  # expect: MP001" if bf16_logits else ""),
    }
    check_files(files, "MP001", tmp_path)


# rlhf-length-biases' layout: `scripts/` holds the accelerate DeepSpeed configs its PPO script is
# launched with, and the reward-model script beside them, which its README starts with `torchrun`.
REWARD_MODEL = """
import torch
from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

model = AutoModelForSequenceClassification.from_pretrained("meta-llama/Llama-2-7b-hf", torch_dtype=torch.bfloat16)
args = TrainingArguments(output_dir="out", bf16=True, learning_rate=1e-5)
trainer = Trainer(model=model, args=args, train_dataset=None){expect}
trainer.train()
"""
ZERO3_BF16 = "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\nmixed_precision: bf16\n"


@pytest.mark.parametrize(
    ("readme", "bug"),
    [
        pytest.param("torchrun --nproc_per_node 2 scripts/train_rm.py\n", True, id="started-plainly"),
        pytest.param(
            "accelerate launch --config_file scripts/default_config.yaml scripts/train_rm.py\n",
            False,
            id="started-under-the-deepspeed-config",
        ),
        pytest.param("", False, id="started-by-no-command"),
    ],
)
def test_a_script_started_plainly_runs_with_no_accelerate_config(readme: str, bug: bool, tmp_path: Path) -> None:
    """A config beside the script is another script's (`accelerate launch --config_file
    scripts/default_config.yaml scripts/ppo.py`): started with `torchrun`, the reward model's Trainer
    builds its own optimizer over the bf16 model, with no DeepSpeed to keep fp32 weights."""
    files = {
        "scripts/train_rm.py": REWARD_MODEL.format(expect="  # expect: MP003" if bug else ""),
        "scripts/ppo.py": "print('ppo')\n",
        "scripts/default_config.yaml": ZERO3_BF16,
        "scripts/run_ppo.sh": "accelerate launch --config_file scripts/default_config.yaml scripts/ppo.py\n",
        "README.md": f"```bash\n{readme}```\n",
        "requirements.txt": "transformers==4.44.2\n",
    }
    check_files(files, "MP003", tmp_path)


def test_a_script_started_both_ways_runs_plainly_by_default(tmp_path: Path) -> None:
    """async_rlhf's online_dpo.py: `python online_dpo.py` in its README, and `accelerate launch
    --config_file configs/deepspeed_zero2.yaml online_dpo.py` too: no config by default, ZeRO-2 another
    configuration."""
    from mplint.analysis.frameworks.accelerate_launch import launch_of

    files = {
        "online_dpo.py": "print('train')\n",
        "configs/deepspeed_zero2.yaml": ZERO3_BF16,
        "requirements.txt": "",
        "README.md": "```bash\npython online_dpo.py --config configs/a.yml\n"
        "accelerate launch --config_file configs/deepspeed_zero2.yaml online_dpo.py\n```\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    launch = launch_of(str(tmp_path / "online_dpo.py"), str(tmp_path))
    assert launch.default is None and launch.without_config
    assert [condition for _, condition in launch.alternatives] == [
        "launched with `accelerate launch --config_file` `configs/deepspeed_zero2.yaml`"
    ]
