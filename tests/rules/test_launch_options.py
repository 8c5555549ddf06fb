"""The options a repository's own launch commands give a script are its configuration (`analysis.
launch_options`): an option every command of the script gives alike replaces the default in code,
for argparse options and HfArgumentParser dataclass fields; options the commands disagree on keep
it, and a command giving an option of precision the others do not is a configuration of its own,
reported as conditional; commands of another script change nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mplint.analysis.launch_options import MOST_ALTERNATIVES, _options, options_of, typed

from .casekit import check_files

ARGPARSE_TRAIN = """
    import argparse

    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM


    def main():
        parser = argparse.ArgumentParser()
        parser.add_argument("--bf16", action="store_true")
        parser.add_argument("--lr", type=float, default=1e-5)
        args = parser.parse_args()
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=dtype)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=args.lr)  # MARK


    if __name__ == "__main__":
        main()
"""

HF_TRAIN = """
    from dataclasses import dataclass, field

    import torch
    import torch.nn.functional as F
    import transformers


    @dataclass
    class ScriptArguments:
        model_name_or_path: str = field(default="Qwen/Qwen2.5-0.5B")
        torch_dtype: str = "float32"


    def main():
        parser = transformers.HfArgumentParser((ScriptArguments, transformers.TrainingArguments))
        script_args, training_args = parser.parse_args_into_dataclasses()
        policy = transformers.AutoModelForCausalLM.from_pretrained(
            script_args.model_name_or_path, torch_dtype=getattr(torch, script_args.torch_dtype)
        )
        logits = policy(input_ids).logits
        return F.log_softmax(logits, dim=-1)  # MARK


    if __name__ == "__main__":
        main()
"""

TYRO_TRAIN = """
    from dataclasses import dataclass

    import torch
    import tyro
    from transformers import AutoModelForCausalLM


    @dataclass
    class Args:
        torch_dtype: str = "float32"
        learning_rate: float = 3e-6


    if __name__ == "__main__":
        args = tyro.cli(Args)
        dtype = getattr(torch, args.torch_dtype)
        policy = AutoModelForCausalLM.from_pretrained("EleutherAI/pythia-1b", torch_dtype=dtype)
        optimizer = torch.optim.AdamW(policy.parameters(), lr=args.learning_rate)  # MARK
"""

TRAINER_TRAIN = """
    import torch.nn.functional as F
    import transformers


    class GRPOTrainer(transformers.Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            logits = model(input_ids=inputs["input_ids"]).logits
            return -F.log_softmax(logits, dim=-1).mean()  # MARK


    if __name__ == "__main__":
        (training_args,) = transformers.HfArgumentParser(transformers.TrainingArguments).parse_args_into_dataclasses()
        model = transformers.AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B")
        GRPOTrainer(model=model, args=training_args).train()
"""

RUN_SH = """
    #!/bin/bash
    export OUTPUT=checkpoints/ppo
    CUDA_VISIBLE_DEVICES=0,1 torchrun --nproc_per_node 2 \\
        train.py \\
        {flags} \\
        --output_dir $OUTPUT 2>&1 | tee train.log
"""


def project(train: str, commands: dict[str, str], bug: str | None) -> dict[str, str]:
    marked = train.replace("# MARK", f"# expect: {bug}" if bug else "")
    return {"train.py": marked, **commands}


CASES = [
    pytest.param(ARGPARSE_TRAIN, {"scripts/run.sh": RUN_SH.format(flags="--bf16 --lr 2e-6")}, "MP003", id="store-true"),
    pytest.param(
        HF_TRAIN,
        {"README.md": "Train:\n\n```bash\npython train.py --torch_dtype bfloat16 --bf16 True\n```\n"},
        "MP001",
        id="hf-dataclass-field-from-a-readme",
    ),
    pytest.param(
        TYRO_TRAIN,
        {"benchmark/ppo.sh": RUN_SH.format(flags="--torch-dtype bfloat16 --learning-rate 3e-6")},
        "MP003",
        id="tyro-dataclass",
    ),
    pytest.param(TYRO_TRAIN, {}, None, id="tyro-dataclass-started-plainly"),
    pytest.param(
        TRAINER_TRAIN,
        {"scripts/grpo.sh": RUN_SH.format(flags="--deepspeed configs/zero3.json --bf16")},
        "MP001",
        id="trainer-arguments-on-deepspeed",
    ),
    pytest.param(TRAINER_TRAIN, {"scripts/sft.sh": RUN_SH.format(flags="--bf16 True")}, None, id="trainer-bf16-amp"),
    pytest.param(
        TRAINER_TRAIN.replace(
            "(training_args,) = transformers.HfArgumentParser(transformers.TrainingArguments)",
            "(training_args,) = transformers.HfArgumentParser(GRPOConfig)",
        )
        .replace(
            "class GRPOTrainer(transformers.Trainer):",
            "@dataclass\n    class GRPOConfig(transformers.TrainingArguments):\n"
            "        num_generations: int = 8\n\n\n    class GRPOTrainer(transformers.Trainer):",
        )
        .replace("import transformers\n", "import transformers\n    from dataclasses import dataclass\n", 1),
        {"scripts/grpo.sh": RUN_SH.format(flags="--deepspeed configs/zero3.json --bf16")},
        "MP001",
        id="a-linted-subclass-of-the-training-arguments-takes-their-flags",
    ),
    pytest.param(
        ARGPARSE_TRAIN,
        {"run.sh": RUN_SH.format(flags="--bf16 --lr 2e-6"), "run_fp32.sh": RUN_SH.format(flags="--lr 1e-6")},
        "MP003",
        id="a-command-alone-giving-bf16-is-a-configuration-of-its-own",
    ),
    pytest.param(
        ARGPARSE_TRAIN,
        {"run.sh": RUN_SH.format(flags="--lr 2e-6"), "run_fp32.sh": RUN_SH.format(flags="--lr 1e-6")},
        None,
        id="commands-that-disagree-on-no-option-of-precision",
    ),
    pytest.param(
        TRAINER_TRAIN,
        {
            "scripts/grpo.sh": RUN_SH.format(flags="--deepspeed configs/zero3.json --bf16"),
            "scripts/grpo_7b.sh": RUN_SH.format(flags="--deepspeed configs/zero3.json --bf16 true"),
        },
        "MP001",
        id="a-flag-alone-and-a-true-word-agree",
    ),
    pytest.param(
        TRAINER_TRAIN,
        {
            "scripts/grpo.sh": RUN_SH.format(flags="--deepspeed configs/zero3.json --bf16"),
            "scripts/grpo_fp32.sh": RUN_SH.format(flags="--deepspeed configs/zero3.json --bf16 False"),
        },
        "MP001",  # only as grpo.sh launches it: the default in code (no bf16) is fp32
        id="a-flag-alone-and-a-false-word-disagree",
    ),
    pytest.param(
        ARGPARSE_TRAIN,
        {"run.sh": RUN_SH.format(flags="--bf16").replace("train.py", "train_rm.py")},
        None,
        id="a-command-of-another-script",
    ),
    pytest.param(
        HF_TRAIN.replace('torch_dtype: str = "float32"', 'torch_dtype: str = "bfloat16"'),
        {"run.sh": RUN_SH.format(flags="--torch_dtype float32")},
        None,
        id="a-command-that-keeps-fp32",
    ),
]


@pytest.mark.parametrize(("train", "commands", "bug"), CASES)
def test_launch_commands_configure_the_script(
    train: str, commands: dict[str, str], bug: str | None, tmp_path: Path
) -> None:
    check_files(project(train, commands, bug), bug or "MP003", tmp_path)
    check_files(project(train, commands, bug), bug or "MP001", tmp_path)


def test_a_changed_launch_script_is_a_dependency(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('train')\n")
    (tmp_path / "run.sh").write_text("python train.py --bf16\n")
    (tmp_path / "notes.md").write_text("nothing to run here\n")
    found = options_of(str(tmp_path / "train.py"), str(tmp_path))
    assert found.options == {"bf16": True}
    assert found.read == (str(tmp_path / "run.sh"),)  # a file that does not name the script is not one


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (["--bf16", "--bf16 true", "--bf16 True", "--bf16=1"], {"bf16": True}),
        (["--bf16 false", "--bf16 False", "--bf16=0"], {"bf16": "false"}),
        (["--bf16", "--bf16 no"], {}),
        (["--lr 1", "--lr 1.0"], {}),  # written apart: only boolean words read alike
    ],
)
def test_commands_agree_on_what_an_option_reads_as(
    commands: list[str], expected: dict[str, object], tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text("print('train')\n")
    for number, flags in enumerate(commands):
        (tmp_path / f"run{number}.sh").write_text(f"python train.py {flags}\n")
    assert options_of(str(tmp_path / "train.py"), str(tmp_path)).options == expected


# The Trainer subclass in a package of its own, re-exported by its `__init__.py`, as GRPO repositories
# lay it out: the launch command configures the script, whose call reaches the subclass.
TRAINER_PACKAGE = {
    "trainer/__init__.py": "from .grpo_trainer import GRPOTrainer\n",
    "trainer/grpo_trainer.py": """
        import torch.nn.functional as F
        import transformers


        class GRPOTrainer(transformers.Trainer):
            def _per_token_logps(self, model, input_ids):
                logits = model(input_ids=input_ids).logits
                return F.log_softmax(logits, dim=-1)  # MARK

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                return -self._per_token_logps(model, inputs["input_ids"]).mean()
    """,
    "grpo.py": """
        import transformers

        from trainer import GRPOTrainer


        def main(training_args):
            model = transformers.AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-VL-7B-Instruct")
            GRPOTrainer(model=model, args=training_args).train()


        if __name__ == "__main__":
            parser = transformers.HfArgumentParser(transformers.TrainingArguments)
            (training_args,) = parser.parse_args_into_dataclasses()
            main(training_args)
    """,
}


@pytest.mark.parametrize(
    ("flags", "bug"),
    [
        ("--deepspeed local_scripts/zero3.json --bf16", "MP001"),
        ("--bf16 true", None),  # bf16 AMP: the Trainer's forward returns fp32 logits
    ],
)
def test_launch_options_reach_a_trainer_in_an_imported_module(flags: str, bug: str | None, tmp_path: Path) -> None:
    files = {name: text.replace("# MARK", f"# expect: {bug}" if bug else "") for name, text in TRAINER_PACKAGE.items()}
    files["scripts/run_grpo.sh"] = RUN_SH.format(flags=flags).replace("train.py", "grpo.py")
    check_files(files, "MP001", tmp_path)


# Video-R1's previous release: of the two scripts that start grpo.py, only run_grpo_video.sh passes
# `--deepspeed`; both pass `--bf16` (by default, then, bf16 AMP, whose Trainer returns fp32 logits).
VIDEO_LAUNCH = {
    "src/scripts/run_grpo_video.sh": RUN_SH.format(flags="--deepspeed local_scripts/zero3.json --bf16"),
    "src/scripts/run_grpo_vllm.sh": RUN_SH.format(flags="--use_vllm True --bf16"),
}


def _grpo_repository(bug: str | None, launch: dict[str, str]) -> dict[str, str]:
    files = {name: text.replace("# MARK", f"# expect: {bug}" if bug else "") for name, text in TRAINER_PACKAGE.items()}
    files.update({name: text.replace("train.py", "grpo.py") for name, text in launch.items()})
    return files


def test_a_launch_the_others_disagree_with_on_deepspeed_is_reported_as_its_condition(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    check_files(_grpo_repository("MP001", VIDEO_LAUNCH), "MP001", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert finding.message.endswith(
        "(only when launched as in `src/scripts/run_grpo_video.sh`: not in the default configuration)"
    )


@pytest.mark.parametrize(
    "launch",
    [
        pytest.param(
            {
                "scripts/run_grpo.sh": RUN_SH.format(flags="--bf16 --output_dir runs/grpo"),
                "scripts/run_grpo_long.sh": RUN_SH.format(flags="--bf16 true --output_dir runs/long --max_steps 900"),
            },
            id="disagreeing-on-output-dir-and-steps",
        ),
        pytest.param(
            {
                "scripts/run_grpo.sh": RUN_SH.format(flags="--deepspeed local_scripts/zero3.json --bf16 false"),
                "scripts/run_grpo_fp32.sh": RUN_SH.format(flags="--deepspeed local_scripts/zero3.json"),
            },
            id="a-false-word-as-the-default-in-code",
        ),
    ],
)
def test_commands_disagreeing_on_no_precision_add_no_configuration(launch: dict[str, str], tmp_path: Path) -> None:
    check_files(_grpo_repository(None, launch), "MP001", tmp_path)
    assert options_of(str(tmp_path / "grpo.py"), str(tmp_path)).alternatives == ()


def test_each_configuration_of_precision_is_one_alternative_and_they_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('train')\n")
    dtypes = ["bfloat16", "float16", "bfloat16", "float32", "bfloat16", "float16"]
    for number, dtype in enumerate(dtypes):
        (tmp_path / f"run{number}.sh").write_text(f"python train.py --torch_dtype {dtype} --output_dir out{number}\n")
    alternatives = options_of(str(tmp_path / "train.py"), str(tmp_path)).alternatives
    # run2 and run4 are run0's configuration again; past the bound, run5 is left out.
    assert [condition for condition, _ in alternatives] == [
        "launched as in `run0.sh`",
        "launched as in `run1.sh`",
        "launched as in `run3.sh`",
    ]
    assert len(alternatives) == MOST_ALTERNATIVES
    assert alternatives[0][1].options == {"torch_dtype": "bfloat16", "output_dir": "out0"}


def test_options_as_commands_write_them() -> None:
    words = ["--a=1", "--b", "2", "--c", "--d-e", "x", "-f", "3", "|", "--after", "pipe"]
    assert _options(words) == {"a": "1", "b": "2", "c": True, "d_e": "x"}
    assert _options(["--out", "$DIR", "--n", "4", ">", "log"]) == {"n": "4"}


@pytest.mark.parametrize(
    ("written", "default", "expected"),
    [
        (True, False, True),
        ("True", False, True),
        ("false", True, False),
        ("maybe", False, None),
        ("2e-6", 1e-5, 2e-6),
        ("8", 4, 8),
        ("eight", 4, None),
        (True, 4, None),
        ("float16", "bfloat16", "float16"),
        ("float16", None, "float16"),
        ("float16", object(), None),
    ],
)
def test_values_are_typed_like_the_default_in_code(written: str | bool, default: object, expected: object) -> None:
    assert typed(written, default) == expected


def test_a_cached_run_sees_a_launch_command_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mplint.api import lint_paths

    monkeypatch.chdir(tmp_path)
    files = project(TYRO_TRAIN, {"ppo.sh": RUN_SH.format(flags="--learning-rate 3e-6")}, None)
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    assert lint_paths(["."], select=["MP003"], cache=True).findings == ()
    (tmp_path / "ppo.sh").write_text(textwrap.dedent(RUN_SH.format(flags="--torch-dtype bfloat16")))
    assert [finding.code for finding in lint_paths(["."], select=["MP003"], cache=True).findings] == ["MP003"]


# llm.c's train_gpt2.py: `--dtype` defaults to float32, scripts/pyrun_gpt2_124M.sh gives bfloat16
# and the README starts it plainly. fp16 is another configuration of the default run's region; the
# run as the script launches it (bf16) does not word it again from its own values.
LLMC_TRAIN = """
    import argparse
    from contextlib import nullcontext

    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", type=str, default="float32", help="float32|float16|bfloat16")
    args = parser.parse_args()
    device_type = "cuda"
    ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
    ctx = torch.amp.autocast(device_type=device_type, dtype=ptdtype) if device_type == "cuda" else nullcontext()
    model = torch.nn.Linear(4, 4).cuda()
    with ctx:
        loss = model(torch.randn(2, 4, device="cuda")).mean()
    loss.backward()
"""


def test_a_region_of_another_configuration_is_worded_from_the_default_run(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    files = {
        "train_gpt2.py": LLMC_TRAIN,
        "README.md": "```bash\npython train_gpt2.py\n```\n",
        "scripts/pyrun_gpt2_124M.sh": "torchrun --nproc_per_node=8 train_gpt2.py --dtype bfloat16 --compile 1\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    (finding,) = lint_paths([tmp_path], select=["MP002"]).findings
    assert finding.message.endswith(
        "(float16 only when `args.dtype == 'float32'` is false: not in the default configuration)"
    )
    assert finding.related == ()


def test_a_region_reached_only_on_a_branch_the_default_skips_is_still_worded(tmp_path: Path) -> None:
    """Only runs under another launch are left to the default run: a branch read aside (nanoGPT's
    bench.py `if profile:`) is decided by the default values, and its route stands."""
    train = LLMC_TRAIN.replace(
        'help="float32|float16|bfloat16")',
        'help="float32|float16|bfloat16")\n    parser.add_argument("--profile", action="store_true")',
    ).replace("    loss.backward()", "    if args.profile:\n        loss.backward()")
    (tmp_path / "train_gpt2.py").write_text(textwrap.dedent(train))
    from mplint.api import lint_paths

    (finding,) = lint_paths([tmp_path], select=["MP002"]).findings
    assert finding.message.endswith(
        "(float16 only when `args.dtype == 'float32'` is false: not in the default configuration)"
    )


# Qwen2-VL-Finetune's layout: the script's arguments class subclasses TRL's config, so `--bf16` and
# `--deepspeed` set fields it inherits; the trainer subclasses TRL's and overrides only a method TRL's
# own `compute_loss` calls with the model (`_get_per_token_logps`, `concatenated_forward`), dividing
# the logits by a temperature of unknown type on the way.
TRL_SUBCLASSES = {
    "requirements.txt": "transformers\ntrl\ndeepspeed\n",
    "src/params.py": """
        from dataclasses import dataclass, field

        from trl import DPOConfig as DPOConfigTRL
        from trl import GRPOConfig as GRPOConfigTRL


        @dataclass
        class ModelArguments:
            model_id: str = field(default="Qwen/Qwen2-VL-7B-Instruct")


        @dataclass
        class GRPOArguments(GRPOConfigTRL):
            freeze_llm: bool = False
            lora_rank: int = 64


        @dataclass
        class DPOArguments(DPOConfigTRL):
            freeze_llm: bool = False
    """,
    "src/trainer/grpo_trainer.py": """
        from trl import GRPOTrainer
        from trl.trainer.utils import selective_log_softmax


        class QwenGRPOTrainer(GRPOTrainer):
            def _get_per_token_logps(self, model, input_ids, attention_mask, logits_to_keep):
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
                logits = logits[:, -logits_to_keep - 1 : -1, :]
                logits = logits / self.temperature
                return selective_log_softmax(logits, input_ids[:, -logits_to_keep:])  # MARK
    """,
    "src/trainer/dpo_trainer.py": """
        from trl import DPOTrainer
        from trl.trainer.utils import selective_log_softmax


        class QwenDPOTrainer(DPOTrainer):
            def concatenated_forward(self, model, batch):
                outputs = model(batch["input_ids"], attention_mask=batch["attention_mask"])
                per_token_logps = selective_log_softmax(outputs.logits, batch["labels"])  # MARK
                return {"chosen_logps": per_token_logps.sum(-1)}
    """,
    "src/train/train_grpo.py": """
        import torch
        from transformers import AutoModelForCausalLM, HfArgumentParser

        from src.params import GRPOArguments, ModelArguments
        from src.trainer.grpo_trainer import QwenGRPOTrainer


        def train():
            parser = HfArgumentParser((ModelArguments, GRPOArguments))
            model_args, training_args = parser.parse_args_into_dataclasses()
            compute_dtype = torch.float16 if training_args.fp16 else (torch.bfloat16 if training_args.bf16 else torch.float32)
            model = AutoModelForCausalLM.from_pretrained(model_args.model_id, torch_dtype=compute_dtype)
            QwenGRPOTrainer(model=model, args=training_args, reward_funcs=[]).train()


        if __name__ == "__main__":
            train()
    """,
    "src/train/train_dpo.py": """
        import torch
        from transformers import AutoModelForCausalLM, HfArgumentParser

        from src.params import DPOArguments, ModelArguments
        from src.trainer.dpo_trainer import QwenDPOTrainer


        def train():
            model_args, training_args = HfArgumentParser((ModelArguments, DPOArguments)).parse_args_into_dataclasses()
            compute_dtype = torch.float16 if training_args.fp16 else (torch.bfloat16 if training_args.bf16 else torch.float32)
            model = AutoModelForCausalLM.from_pretrained(model_args.model_id, torch_dtype=compute_dtype)
            QwenDPOTrainer(model=model, args=training_args).train()


        if __name__ == "__main__":
            train()
    """,
}


@pytest.mark.parametrize(
    ("flags", "bug"),
    [
        ("--deepspeed scripts/zero3.json --bf16 True --fp16 False", "MP001"),
        # bf16 AMP without DeepSpeed: the prepared model returns fp32 logits.
        ("--bf16 True", None),
    ],
)
def test_launch_options_set_fields_an_arguments_class_inherits_from_trl(
    flags: str, bug: str | None, tmp_path: Path
) -> None:
    files = {name: text.replace("# MARK", f"# expect: {bug}" if bug else "") for name, text in TRL_SUBCLASSES.items()}
    for script in ("grpo", "dpo"):
        files[f"scripts/finetune_{script}.sh"] = RUN_SH.format(flags=flags).replace(
            "train.py", f"src/train/train_{script}.py"
        )
    check_files(files, "MP001", tmp_path)


def test_a_method_only_trl_calls_is_not_entered_from_a_plain_trainer(tmp_path: Path) -> None:
    # `transformers.Trainer.compute_loss` never calls `concatenated_forward`: nothing reaches it.
    files = {name: text.replace("# MARK", "") for name, text in TRL_SUBCLASSES.items()}
    files["src/trainer/dpo_trainer.py"] = files["src/trainer/dpo_trainer.py"].replace(
        "from trl import DPOTrainer", "from transformers import Trainer as DPOTrainer"
    )
    files["src/trainer/grpo_trainer.py"] = "class QwenGRPOTrainer:\n    pass\n"
    files["scripts/finetune_dpo.sh"] = RUN_SH.format(flags="--deepspeed scripts/zero3.json --bf16 True").replace(
        "train.py", "src/train/train_dpo.py"
    )
    check_files(files, "MP001", tmp_path)


# The open-r1 family: TRL's `TrlParser` reads the YAML file a command names with `--config` (its
# top-level keys set the dataclasses' fields, the command line wins over them).
TRL_TRAIN = """
    import torch
    from transformers import AutoModelForCausalLM
    from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser


    def main(script_args, training_args, model_args):
        dtype = model_args.torch_dtype
        torch_dtype = dtype if dtype in ["auto", None] else getattr(torch, dtype)
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, torch_dtype=torch_dtype)
        optimizer = torch.optim.AdamW(model.parameters(), lr=training_args.learning_rate)  # MARK


    if __name__ == "__main__":
        parser = TrlParser((ScriptArguments, SFTConfig, ModelConfig))
        script_args, training_args, model_args = parser.parse_args_and_config()
        main(script_args, training_args, model_args)
"""
RECIPE = """
    # Model arguments
    model_name_or_path: Qwen/Qwen2.5-1.5B-Instruct
    model_revision: main
    torch_dtype: {dtype}
    attn_implementation: flash_attention_2

    # Data training arguments
    dataset_name: open-r1/Mixture-of-Thoughts
    dataset_configs:
    - all

    # SFT trainer config
    bf16: true
    learning_rate: 4.0e-05
    gradient_checkpointing_kwargs:
      use_reentrant: false
"""


@pytest.mark.parametrize(
    ("train", "files", "bug"),
    [
        pytest.param(
            TRL_TRAIN,
            {
                "recipes/sft.yaml": RECIPE.format(dtype="bfloat16"),
                "run.sh": "python train.py --config recipes/sft.yaml\n",
            },
            "MP003",
            id="a-recipe-gives-the-model-its-dtype",
        ),
        pytest.param(
            TRL_TRAIN,
            {
                "recipes/sft.yaml": RECIPE.format(dtype="bfloat16"),
                "run.sh": "python train.py --config recipes/sft.yaml --torch_dtype float32\n",
            },
            None,
            id="the-command-line-wins-over-the-recipe",
        ),
        pytest.param(
            TRL_TRAIN,
            {
                "recipes/sft.yaml": RECIPE.format(dtype="bfloat16"),
                "run.sh": "python train.py --config recipes/gone.yaml\n",
            },
            None,
            id="a-recipe-the-repository-lacks",
        ),
        pytest.param(
            TRL_TRAIN.replace("parser.parse_args_and_config()", "parser.parse_args_into_dataclasses()"),
            {
                "recipes/sft.yaml": RECIPE.format(dtype="bfloat16"),
                "run.sh": "python train.py --config recipes/sft.yaml\n",
            },
            None,
            id="a-parser-that-reads-no-config-file",
        ),
        pytest.param(
            TRL_TRAIN,
            {"recipes/sft.yaml": RECIPE.format(dtype="auto"), "run.sh": "python train.py --config recipes/sft.yaml\n"},
            None,
            id="the-checkpoint-s-own-dtype",
        ),
    ],
)
def test_a_trl_parser_reads_the_recipe_its_command_names(
    train: str, files: dict[str, str], bug: str | None, tmp_path: Path
) -> None:
    check_files(project(train, files, bug), "MP003", tmp_path)


# async_rlhf's `src/utils.py`: a copy of trl 0.8's `TrlParser`, subclassing `HfArgumentParser` with its
# own `parse_args_and_config`.
OWN_TRL_PARSER = """
    import sys

    from transformers import HfArgumentParser


    class TRLParser(HfArgumentParser):
        def __init__(self, parsers):
            super().__init__(parsers)

        def parse_args_and_config(self, return_remaining_strings=False):
            if "--config" in sys.argv:
                config_index = sys.argv.index("--config")
                sys.argv.pop(config_index)
            return self.parse_args_into_dataclasses(return_remaining_strings=return_remaining_strings)
"""


@pytest.mark.parametrize(
    ("readme", "bug"),
    [
        pytest.param("python train.py --config recipes/sft.yaml\n", "MP003", id="a-command"),
        pytest.param("Run one:\n\n- `python train.py --config recipes/sft*`\n", "MP003", id="a-pattern-in-a-code-span"),
        pytest.param("Run one:\n\n- `python train.py --config recipes/none*`\n", None, id="a-pattern-matching-nothing"),
    ],
)
def test_a_project_s_copy_of_trl_s_parser_reads_the_recipes_its_commands_name(
    readme: str, bug: str | None, tmp_path: Path
) -> None:
    train = TRL_TRAIN.replace(
        "from trl import ModelConfig, ScriptArguments, SFTConfig, TrlParser",
        "from trl import ModelConfig, ScriptArguments, SFTConfig\n    from utils import TRLParser",
    )
    train = train.replace("TrlParser((", "TRLParser((")
    files = {"utils.py": OWN_TRL_PARSER, "recipes/sft.yaml": RECIPE.format(dtype="bfloat16"), "README.md": readme}
    check_files(project(train, files, bug), "MP003", tmp_path)


def test_recipes_that_disagree_on_the_dtype_are_configurations_named_by_their_file(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    files = {
        "recipes/1.5b.yaml": RECIPE.format(dtype="float32"),
        "recipes/7b.yaml": RECIPE.format(dtype="bfloat16"),
        "README.md": "```\npython train.py --config recipes/1.5b.yaml\npython train.py --config recipes/7b.yaml\n```\n",
    }
    check_files(project(TRL_TRAIN, files, "MP003"), "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert "(only when launched with `--config recipes/7b.yaml`: not in the default configuration)" in finding.message
    assert options_of(str(tmp_path / "train.py"), str(tmp_path)).configured["bf16"] == "true"  # the recipes agree


def test_a_command_naming_a_recipe_the_repository_lacks_gives_the_parser_nothing(tmp_path: Path) -> None:
    from mplint.api import lint_paths

    files = {
        "recipes/7b.yaml": RECIPE.format(dtype="bfloat16"),
        # X-R1's README: a recipe renamed since (`.yaml.yaml`), beside the one that runs.
        "README.md": "python train.py --config recipes/7b.yaml\npython train.py --config recipes/7b.yaml.yaml\n",
    }
    check_files(project(TRL_TRAIN, files, "MP003"), "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert "only when" not in finding.message


# MedicalGPT's RL stage (shibing624/MedicalGPT training/ppo_training.py): all the Python lies in
# `training/`, its launch scripts in `scripts/` beside it (`requirements.txt` marks the repository);
# the script names no precision and no optimizer in its code (the dtype is TRL's `ModelConfig.dtype`,
# given by the launch; the RLOOTrainer builds the optimizer), takes the first three values of
# `parse_args_into_dataclasses(return_remaining_strings=True)`, and passes `peft_config=` whatever
# `get_peft_config` gives (None: `use_peft` is off by default).
MEDICALGPT_PPO = """
    from dataclasses import dataclass, field
    from typing import Optional

    import torch
    from transformers import AutoModelForCausalLM, HfArgumentParser
    from trl import ModelConfig, RLOOConfig, RLOOTrainer, TrlParser, get_peft_config


    @dataclass
    class RLOOArguments:
        sft_model_path: Optional[str] = field(default=None, metadata={"help": "Path to the SFT model."})


    def main():
        parser = HfArgumentParser((RLOOArguments, RLOOConfig, ModelConfig))
        args, training_args, model_args = parser.parse_args_into_dataclasses(
            return_remaining_strings=True
        )[:3]
        torch_dtype = (
            model_args.dtype if model_args.dtype in ["auto", None] else getattr(torch, model_args.dtype)
        )
        policy_kwargs = dict(trust_remote_code=model_args.trust_remote_code)
        if torch_dtype is not None:
            policy_kwargs["torch_dtype"] = torch_dtype
        policy = AutoModelForCausalLM.from_pretrained(args.sft_model_path, **policy_kwargs)
        peft_config = get_peft_config(model_args)
        trainer = RLOOTrainer(  # MARK
            model=policy,
            args=training_args,
            peft_config=peft_config,
        )
        trainer.train()


    if __name__ == "__main__":
        main()
"""
RUN_PPO = """\
CUDA_VISIBLE_DEVICES=0,1 python3 training/ppo_training.py \\
    --sft_model_path Qwen/Qwen3.5-2B \\
    --dtype bfloat16 {flags}\\
    --output_dir outputs-ppo-qwen-v1
"""
TRL_PARSED = MEDICALGPT_PPO.replace("HfArgumentParser((", "TrlParser((").replace(
    "parse_args_into_dataclasses(", "parse_args_and_config("
)


@pytest.mark.parametrize(
    ("train", "flags", "bug"),
    [
        pytest.param(MEDICALGPT_PPO, "", "MP003", id="full-parameter-rloo"),
        pytest.param(MEDICALGPT_PPO, "--use_peft True ", None, id="lora-adapters-are-fp32"),
        pytest.param(MEDICALGPT_PPO, "--use_peft False ", "MP003", id="lora-turned-off"),
        pytest.param(MEDICALGPT_PPO.replace("[:3]", "[:n]"), "", None, id="a-slice-of-unknown-bound"),
        pytest.param(
            MEDICALGPT_PPO.replace("peft_config=peft_config", "peft_config=None"), "", "MP003", id="peft-config-none"
        ),
        pytest.param(TRL_PARSED, "", "MP003", id="trl-parser-started-with-no-config-file"),
        pytest.param(TRL_PARSED, "--config recipes/ppo.yaml ", None, id="trl-parser-reading-a-recipe"),
    ],
)
def test_a_trainer_over_a_model_the_launch_makes_bf16_from_a_folder_beside_the_code(
    train: str, flags: str, bug: str | None, tmp_path: Path
) -> None:
    files = {
        "requirements.txt": "trl>=0.17\n",
        "training/ppo_training.py": train.replace("# MARK", f"# expect: {bug}" if bug else ""),
        "scripts/run_ppo.sh": RUN_PPO.format(flags=flags),
        "recipes/ppo.yaml": "learning_rate: 1.0e-6\nmissing_eos_penalty: 1.0\n",
    }
    check_files(files, "MP003", tmp_path)
