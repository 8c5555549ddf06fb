"""Transformers' Trainer and TRL's trainers in the precision model (transformers 5.24.0 trainer.py and
training_args.py, trl 1.16.0 trainer/base_config.py): `fp16=True` makes the Trainer scale its
losses, `bf16=True` does not; neither flag set, the launch decides; the model handed to a
`compute_loss` override is the accelerate-prepared one (fp32 outputs under mixed precision); a
model loaded in fp16 under `fp16=True` is MP107's case."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, lint, ok

COMPUTE_LOSS = [
    ok(
        "dpo-style-override-under-bf16-reads-fp32-logits",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        class PreferenceTrainer(Trainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                logits = model(input_ids=inputs["input_ids"]).logits
                logps = F.log_softmax(logits, dim=-1)
                loss = -logps.gather(-1, inputs["labels"].unsqueeze(-1)).mean()
                return (loss, logits) if return_outputs else loss

        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        args = TrainingArguments(output_dir="out", bf16=True, per_device_train_batch_size=4)
        PreferenceTrainer(model=model, args=args, train_dataset=train_ds).train()
        """,
    ),
    ok(
        "override-with-the-launch-deciding-stays-quiet",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        class PreferenceTrainer(Trainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                logits = model(**inputs).logits
                return -F.log_softmax(logits, dim=-1).mean()

        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        PreferenceTrainer(model, TrainingArguments(output_dir="out")).train()
        """,
    ),
]


@pytest.mark.parametrize("source", COMPUTE_LOSS)
def test_compute_loss_overrides_see_the_prepared_model(source: str) -> None:
    check(source, "MP001")


FP16_TRAINER = [
    ok(
        "fp16-trainer-scales-its-backward",
        """
        import torch
        from transformers import Trainer, TrainingArguments

        args = TrainingArguments(output_dir="out", fp16=True)
        trainer = Trainer(model=model, args=args, train_dataset=ds)

        def sanity_step(batch):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            loss.backward()
        """,
    ),
    ok(
        "trl-config-from-a-dataclass-default",
        """
        from dataclasses import dataclass
        import torch
        from trl import SFTConfig, SFTTrainer

        @dataclass
        class ScriptConfig(SFTConfig):
            fp16: bool = True

        trainer = SFTTrainer(model=model, args=ScriptConfig(output_dir="out"), train_dataset=ds)

        def probe(batch):
            with torch.autocast("cuda"):
                loss = model(**batch).loss
            loss.backward()
        """,
    ),
    bug(
        "bf16-trainer-does-not-scale-a-hand-written-fp16-region",
        """
        import torch
        from trl import GRPOConfig, GRPOTrainer

        config = GRPOConfig(output_dir="out", bf16=True, fp16=False)
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config)

        def probe(batch):
            with torch.autocast("cuda"):  # expect: MP002
                loss = model(**batch).loss
            loss.backward()
        """,
    ),
]


@pytest.mark.parametrize("source", FP16_TRAINER)
def test_the_trainer_scales_fp16_losses(source: str) -> None:
    check(source, "MP002")


MP107 = [
    bug(
        "fp16-loaded-model-under-sftconfig-fp16",
        """
        import torch
        from transformers import AutoModelForCausalLM
        from trl import SFTConfig, SFTTrainer

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float16)
        config = SFTConfig(output_dir="out", fp16=True)  # expect: MP107
        SFTTrainer(model=model, args=config, train_dataset=ds).train()
        """,
    ),
    ok(
        "dtype-auto-stays-unknown",
        """
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype="auto")
        args = TrainingArguments(output_dir="out", fp16=True)
        Trainer(model=model, args=args, train_dataset=ds).train()
        """,
    ),
    ok(
        "fp16-lora-on-an-fp16-base-trains-fp32-adapters",
        """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM
        from trl import DPOConfig, DPOTrainer

        base = AutoModelForCausalLM.from_pretrained("gpt2", dtype=torch.float16)
        model = get_peft_model(base, LoraConfig(r=8))
        DPOTrainer(model=model, args=DPOConfig(output_dir="out", fp16=True), train_dataset=ds).train()
        """,
    ),
]


@pytest.mark.parametrize("source", MP107)
def test_fp16_amp_over_an_fp16_model(source: str) -> None:
    check(source, "MP107")


def test_a_trainer_subclass_in_another_file(tmp_path: Path) -> None:
    """The override lives in `trainers.py`; the script builds it with bf16 arguments: the prepared
    model's logits are fp32 (the teacher's bf16 ones only reach a softmax)."""
    check_files(
        {
            "trainers.py": """
                import torch
                import torch.nn.functional as F
                from transformers import Trainer

                class DistillTrainer(Trainer):
                    def __init__(self, *args, teacher=None, **kwargs):
                        super().__init__(*args, **kwargs)
                        self.teacher = teacher

                    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                        student = F.log_softmax(model(**inputs).logits, dim=-1)
                        with torch.no_grad():
                            teacher = F.softmax(self.teacher(**inputs).logits, dim=-1)
                        return F.kl_div(student, teacher, reduction="batchmean")
            """,
            "train.py": """
                import torch
                from transformers import AutoModelForCausalLM, TrainingArguments
                from trainers import DistillTrainer

                student = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
                teacher = AutoModelForCausalLM.from_pretrained("gpt2-large", torch_dtype=torch.bfloat16)
                args = TrainingArguments(output_dir="out", bf16=True)
                DistillTrainer(model=student, args=args, teacher=teacher).train()
            """,
        },
        "MP001",
        tmp_path,
    )


ARGUMENT_PARSERS = [
    bug(
        "hf-argument-parser-fields-take-their-defaults",
        """
        from dataclasses import dataclass, field

        import torch
        import torch.nn.functional as F
        import transformers


        @dataclass
        class ModelArguments:
            model_name_or_path: str = field(default="Qwen/Qwen2.5-0.5B")


        @dataclass
        class ScriptArguments:
            bf16: bool = field(default=True, metadata={"help": "load the policy in bf16"})
            lr: float = 1e-6


        def main():
            parser = transformers.HfArgumentParser((ModelArguments, ScriptArguments))
            model_args, script_args = parser.parse_args_into_dataclasses()
            dtype = torch.bfloat16 if script_args.bf16 else torch.float32
            policy = transformers.AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, torch_dtype=dtype)
            optimizer = torch.optim.AdamW(policy.parameters(), lr=script_args.lr)  # expect: MP003
            logits = policy(input_ids).logits
            logps = F.log_softmax(logits, dim=-1)  # expect: MP001


        if __name__ == "__main__":
            main()
        """,
    ),
    ok(
        "hf-argument-parser-default-off",
        """
        from dataclasses import dataclass, field

        import torch
        import transformers
        from transformers import HfArgumentParser


        @dataclass
        class ScriptArguments:
            bf16: bool = field(default=False)


        def main():
            (script_args,) = HfArgumentParser(ScriptArguments).parse_args_into_dataclasses()
            dtype = torch.bfloat16 if script_args.bf16 else torch.float32
            policy = transformers.AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=dtype)
            optimizer = torch.optim.AdamW(policy.parameters())


        if __name__ == "__main__":
            main()
        """,
    ),
    bug(
        "trl-parser-with-remaining-strings",
        """
        from dataclasses import dataclass

        import torch
        from trl import ModelConfig, TrlParser
        from transformers import AutoModelForCausalLM


        @dataclass
        class ScriptArguments:
            torch_dtype: str = "bfloat16"


        def main():
            parser = TrlParser((ScriptArguments, ModelConfig))
            script_args, model_config, remaining = parser.parse_args_and_config(return_remaining_strings=True)
            policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=getattr(torch, script_args.torch_dtype))
            optimizer = torch.optim.AdamW(policy.parameters())  # expect: MP003


        if __name__ == "__main__":
            main()
        """,
    ),
    ok(
        "hf-argument-parser-unknown-count-of-values",
        """
        from dataclasses import dataclass

        import torch
        from transformers import AutoModelForCausalLM, HfArgumentParser


        @dataclass
        class ScriptArguments:
            torch_dtype: str = "bfloat16"


        def main(keep_rest):
            script_args, *rest = HfArgumentParser(ScriptArguments).parse_args_into_dataclasses(
                return_remaining_strings=keep_rest
            )
            policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=getattr(torch, script_args.torch_dtype))
            optimizer = torch.optim.AdamW(policy.parameters())
        """,
    ),
]


@pytest.mark.parametrize("source", ARGUMENT_PARSERS)
def test_argument_parsers_give_dataclasses_with_their_defaults(source: str) -> None:
    check(source, "MP001")
    check(source, "MP003")


DEEPSPEED_TRAINER = """
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments


    class GRPOTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            logits = model(input_ids=inputs["input_ids"]).logits
            logps = F.log_softmax(logits, dim=-1)  # MARK
            return -(logps.gather(-1, inputs["labels"].unsqueeze(-1)) * inputs["advantages"]).mean()


    model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2-VL-2B-Instruct")
    args = TrainingArguments(output_dir="out", bf16=True, deepspeed={deepspeed})
    GRPOTrainer(model=model, args=args).train()
"""


@pytest.mark.parametrize(
    ("deepspeed", "bug"),
    [
        ('"configs/zero3.json"', True),
        ('{"zero_optimization": {"stage": 3}, "bf16": {"enabled": "auto"}}', True),
        ("None", False),
    ],
)
def test_a_trainer_on_deepspeed_runs_compute_loss_on_a_half_engine(deepspeed: str, bug: bool) -> None:
    # No autocast under DeepSpeed: the bf16 engine's logits reach the override as they are.
    source = DEEPSPEED_TRAINER.replace("{deepspeed}", deepspeed)
    check(source.replace("# MARK", "# expect: MP001" if bug else ""), "MP001")


# A model of the project's own under the stock Trainer (or a subclass overriding no step): the Trainer's
# `compute_loss` runs `model(**inputs)`, the model's forward on the batch, as the Trainer prepared it.
EMBEDDER_UNDER_THE_TRAINER = """
    import torch
    import torch.nn.functional as F
    from torch import nn
    from transformers import AutoModel, Trainer, TrainingArguments


    class Embedder(nn.Module):
        def __init__(self, name, temperature=0.02):
            super().__init__()
            self.model = AutoModel.from_pretrained(name)
            self.temperature = temperature

        def forward(self, queries, passages, teacher_targets):
            q = self.model(**queries).last_hidden_state[:, 0]
            p = self.model(**passages).last_hidden_state[:, 0]
            scores = q @ p.T / self.temperature
            log_probs = torch.log_softmax(scores, dim=-1)  # MARK
            return F.kl_div(log_probs, teacher_targets, reduction="batchmean")


    class EmbedderTrainer(Trainer):
        def _save(self, output_dir=None, state_dict=None):
            self.model.save(output_dir)


    args = TrainingArguments(output_dir="out", {precision}=True{deepspeed})
    {trainer}(model=Embedder("BAAI/bge-m3"), args=args).train()
"""


@pytest.mark.parametrize("trainer", ["Trainer", "EmbedderTrainer"])
@pytest.mark.parametrize(
    ("precision", "deepspeed", "bug"),
    [
        pytest.param("fp16", ', deepspeed="ds_stage0.json"', True, id="deepspeed-fp16-engine"),
        pytest.param("bf16", ', deepspeed="ds_stage0.json"', True, id="deepspeed-bf16-engine"),
        pytest.param("fp16", "", False, id="accelerate-fp16-autocast"),
    ],
)
def test_the_trainer_s_own_step_runs_the_model_s_forward(
    trainer: str, precision: str, deepspeed: str, bug: bool
) -> None:
    """Under DeepSpeed the engine's half weights give half scores (no autocast); under accelerate's
    mixed precision the forward runs in a CUDA autocast region, where log_softmax is fp32."""
    source = EMBEDDER_UNDER_THE_TRAINER.format(precision=precision, deepspeed=deepspeed, trainer=trainer)
    check(source.replace("# MARK", "# expect: MP001" if bug else ""), "MP001")


# The Trainer builds its own optimizer over the model's trainable parameters as they are
# (`create_optimizer`): a model loaded half trains with no fp32 master weights, unless DeepSpeed or
# FSDP holds them, or the launch may bring either.
LLAVA_TRAINER = """
        import torch
        import transformers
        from transformers import Trainer


        class LLaVATrainer(Trainer):
            def create_optimizer(self):
                opt_model = self.model
                if self.optimizer is None:
                    decay = [n for n, _ in opt_model.named_parameters() if "bias" not in n]
                    groups = [
                        {{"params": [p for n, p in opt_model.named_parameters() if n in decay and p.requires_grad]}},
                        {{"params": [p for n, p in opt_model.named_parameters() if n not in decay and p.requires_grad], "weight_decay": 0.0}},
                    ]
                    optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args)
                    self.optimizer = optimizer_cls(groups, **optimizer_kwargs){expect}
                return self.optimizer


        def train():
            model = transformers.AutoModelForCausalLM.from_pretrained("lmsys/vicuna-7b-v1.5", {dtype})
            args = transformers.TrainingArguments(output_dir="out", bf16=True{deepspeed})
            LLaVATrainer(model=model, args=args).train()
        """

OWN_OPTIMIZER = [
    bug(
        "trainer-over-a-bf16-model",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        def main():
            model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
            args = TrainingArguments(output_dir="out", bf16=True, learning_rate=2e-5)
            trainer = Trainer(model=model, args=args, train_dataset=train_ds)  # expect: MP003
            trainer.train()
        """,
    ),
    bug(
        "seq2seq-trainer-over-parsed-arguments",
        """
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, Seq2SeqTrainer, Seq2SeqTrainingArguments

        def train():
            parser = transformers.HfArgumentParser(Seq2SeqTrainingArguments)
            (training_args,) = parser.parse_args_into_dataclasses()
            model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
            trainer = Seq2SeqTrainer(model=model, args=training_args)  # expect: MP003
            trainer.train()
        """,
    ),
    bug(
        "trainer-subclass-loading-a-bf16-model-by-name",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        class SFTTrainer(Trainer):
            def __init__(self, model, args, model_init_kwargs=None):
                if isinstance(model, str):
                    model = AutoModelForCausalLM.from_pretrained(model, **(model_init_kwargs or {}))
                super().__init__(model=model, args=args)

        args = TrainingArguments(output_dir="out", bf16=True)
        trainer = SFTTrainer("huggyllama/llama-7b", args, {"torch_dtype": torch.bfloat16})  # expect: MP003
        trainer.train()
        """,
    ),
    ok(
        "trainer-over-an-fp32-model-under-bf16-amp",
        """
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b")
        Trainer(model=model, args=TrainingArguments(output_dir="out", bf16=True)).train()
        """,
    ),
    ok(
        "trainer-on-deepspeed-keeps-fp32-masters",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        args = TrainingArguments(output_dir="out", bf16=True, deepspeed="configs/zero3.json")
        Trainer(model=model, args=args).train()
        """,
    ),
    ok(
        "trainer-under-fsdp",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        args = TrainingArguments(output_dir="out", bf16=True, fsdp="full_shard auto_wrap")
        Trainer(model=model, args=args).train()
        """,
    ),
    ok(
        "arguments-from-a-config-dict",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        def main(config):
            model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
            Trainer(model=model, args=TrainingArguments(**config["training"])).train()
        """,
    ),
    ok(
        "trl-parser-may-read-a-config-file",
        """
        import torch
        from transformers import AutoModelForCausalLM
        from trl import SFTConfig, SFTTrainer, TrlParser

        (training_args,) = TrlParser(SFTConfig).parse_args_and_config()
        model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
        SFTTrainer(model=model, args=training_args).train()
        """,
    ),
    ok(
        "lora-adapters-are-fp32",
        """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        model = get_peft_model(model, LoraConfig(r=16, target_modules=["q_proj", "v_proj"]))
        Trainer(model=model, args=TrainingArguments(output_dir="out", bf16=True)).train()
        """,
    ),
    bug(
        "a-trainer-subclass-over-a-bf16-model",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        class DistillTrainer(Trainer):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                return model(**inputs).loss

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        DistillTrainer(model=model, args=TrainingArguments(output_dir="out", bf16=True)).train()  # expect: MP003
        """,
    ),
    ok(
        "a-trainer-subclass-that-builds-its-own-optimizer",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
        from optimi import AdamW

        class KahanTrainer(Trainer):
            def create_optimizer(self):
                self.optimizer = AdamW(self.model.parameters(), lr=self.args.learning_rate, kahan_sum=True)
                return self.optimizer

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        KahanTrainer(model=model, args=TrainingArguments(output_dir="out", bf16=True)).train()
        """,
    ),
    # LLaVA's `create_optimizer` override, copied by its many descendants: the optimizer class the
    # Trainer would pick, over the model's trainable parameters.
    bug(
        "a-llava-style-create-optimizer-over-a-bf16-model",
        LLAVA_TRAINER.format(expect="  # expect: MP003", dtype="torch_dtype=torch.bfloat16", deepspeed=""),
    ),
    ok(
        "a-llava-style-create-optimizer-on-deepspeed",
        LLAVA_TRAINER.format(
            expect="", dtype="torch_dtype=torch.bfloat16", deepspeed=', deepspeed="scripts/zero2.json"'
        ),
    ),
    ok(
        "a-llava-style-create-optimizer-over-an-fp32-model",
        LLAVA_TRAINER.format(expect="", dtype='cache_dir="cache"', deepspeed=""),
    ),
    bug(
        "the-trainer's-optimizer-class-in-a-helper",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer


        def create_optimizer(args, model):
            params = [p for p in model.parameters() if p.requires_grad]
            optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)
            return optimizer_cls(params, **optimizer_kwargs)  # expect: MP003


        policy = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        optimizer = create_optimizer(training_args, policy)
        """,
    ),
    ok(
        "an-optimizer-handed-in",
        """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
        from optimi import AdamW

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        optimizer = AdamW(model.parameters(), lr=2e-5, kahan_sum=True)
        Trainer(model=model, args=TrainingArguments(output_dir="out"), optimizers=(optimizer, None)).train()
        """,
    ),
]


@pytest.mark.parametrize("source", OWN_OPTIMIZER)
def test_the_trainer_builds_its_optimizer_over_the_model_as_it_is(source: str) -> None:
    check(source, "MP003")


def test_an_accelerate_config_may_bring_deepspeed_to_the_trainer(tmp_path: Path) -> None:
    train = """
        import torch
        from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

        model = AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b", torch_dtype=torch.bfloat16)
        Trainer(model=model, args=TrainingArguments(output_dir="out", bf16=True)).train()
    """
    zero3 = "compute_environment: LOCAL_MACHINE\ndistributed_type: DEEPSPEED\nmixed_precision: bf16\n"
    launch = "accelerate launch --config_file recipes/zero3.yaml train.py\n"
    check_files({"train.py": train, "recipes/zero3.yaml": zero3, "run.sh": launch}, "MP003", tmp_path)


# LLaVA's layout: `train.py` parses the arguments and is never started itself; `train_mem.py` runs its
# `train()`, started by the repository's commands with `--deepspeed` (zero2 or zero3: no value agreed).
LLAVA_TRAIN = """
    import torch
    import transformers


    def train():
        parser = transformers.HfArgumentParser((transformers.TrainingArguments,))
        (training_args,) = parser.parse_args_into_dataclasses()
        model = transformers.AutoModelForCausalLM.from_pretrained(
            "lmsys/vicuna-7b-v1.5", torch_dtype={dtype}
        )
        transformers.Trainer(model=model, args=training_args).train(){expect}


    if __name__ == "__main__":
        train()
"""
LLAVA_TRAIN_MEM = "from llava.train.train import train\n\nif __name__ == '__main__':\n    train()\n"


ON_DEEPSPEED = ("--deepspeed ./scripts/zero2.json", "--deepspeed ./scripts/zero3.json")
BF16_IF_ASKED = "(torch.bfloat16 if training_args.bf16 else None)"


@pytest.mark.parametrize(
    ("commands", "dtype", "bug"),
    [
        pytest.param(ON_DEEPSPEED, BF16_IF_ASKED, False, id="on-deepspeed"),
        # Started by no command itself, `train.py` (bf16 whatever its options) runs as `train_mem.py` is.
        pytest.param(ON_DEEPSPEED, "torch.bfloat16", False, id="on-deepspeed-through-the-other-script"),
        pytest.param(("", "--gradient_checkpointing True"), BF16_IF_ASKED, True, id="plain"),
    ],
)
def test_a_script_no_command_starts_runs_as_the_commands_that_start_its_code(
    commands: tuple[str, str], dtype: str, bug: bool, tmp_path: Path
) -> None:
    files = {
        "pyproject.toml": '[project]\nname = "llava"\n',
        "llava/__init__.py": "",
        "llava/train/__init__.py": "",
        "llava/train/train.py": LLAVA_TRAIN.format(dtype=dtype, expect="  # expect: MP003" if bug else ""),
        "llava/train/train_mem.py": LLAVA_TRAIN_MEM,
    }
    for name, options in zip(("pretrain.sh", "finetune.sh"), commands, strict=True):
        files[f"scripts/{name}"] = f"deepspeed llava/train/train_mem.py {options} --bf16 True --output_dir out\n"
    check_files(files, "MP003", tmp_path)


def test_a_command_that_starts_code_from_elsewhere_is_not_one_of_the_repositorys(tmp_path: Path) -> None:
    """Online-RLHF's README trains its SFT model with `torchrun -m axolotl.cli.train ... --deepspeed`:
    axolotl is no code of the repository, so its `--deepspeed` says nothing of how `train.py` runs."""
    files = {
        "pyproject.toml": '[project]\nname = "llava"\n',
        "llava/__init__.py": "",
        "llava/train/__init__.py": "",
        "llava/train/train.py": LLAVA_TRAIN.format(dtype="torch.bfloat16", expect="  # expect: MP003"),
        "README.md": "    torchrun --nproc_per_node 8 -m axolotl.cli.train sft.yaml --deepspeed ../configs/ds_z3.json\n",
    }
    check_files(files, "MP003", tmp_path)


# TRL's trainers as GRPO repositories copy them (X-R1's XGRPOTrainer): the model is named by a string,
# loaded in the subclass's `__init__` with the arguments' `model_init_kwargs`, and handed to the
# Trainer's `__init__`, which stores it as `self.model`; `compute_loss` is given that model, prepared.
SUBCLASS_LOADING_ITS_MODEL = {
    "setup.py": "from setuptools import setup\n\nsetup(name='x_r1')\n",  # the repository's root, above src/
    "src/x_r1/x_grpo_trainer.py": """
        import torch
        from transformers import AutoModelForCausalLM, Trainer
        from trl.trainer import GRPOTrainer
        from trl.trainer.utils import selective_log_softmax


        class XGRPOTrainer(GRPOTrainer):
            def __init__(self, model, reward_funcs, args=None, peft_config=None):
                model_init_kwargs = args.model_init_kwargs or {}
                if isinstance(model, str):
                    torch_dtype = model_init_kwargs.get("torch_dtype")
                    if isinstance(torch_dtype, torch.dtype) or torch_dtype == "auto" or torch_dtype is None:
                        pass
                    elif isinstance(torch_dtype, str):
                        torch_dtype = getattr(torch, torch_dtype)
                        model_init_kwargs["torch_dtype"] = torch_dtype
                    model = AutoModelForCausalLM.from_pretrained(model, **model_init_kwargs)
                INIT

            def _get_per_token_logps(self, model, input_ids, attention_mask, logits_to_keep):
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
                logits = logits[:, :-1, :]
                return selective_log_softmax(logits[:, -logits_to_keep:], input_ids[:, -logits_to_keep:])  # MARK

            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                input_ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
                logits_to_keep = inputs["completion_ids"].size(1)
                per_token_logps = self._get_per_token_logps(model, input_ids, inputs["attention_mask"], logits_to_keep)
                return -(per_token_logps * inputs["advantages"].unsqueeze(1)).mean()
    """,
    "src/x_r1/grpo.py": """
        import torch
        from transformers import HfArgumentParser, TrainingArguments

        from x_grpo_trainer import XGRPOTrainer


        def main(training_args):
            training_args.model_init_kwargs = dict(torch_dtype=torch.bfloat16, use_cache=False)
            trainer = XGRPOTrainer(model="Qwen/Qwen2.5-0.5B", reward_funcs=[], args=training_args)
            trainer.train()


        if __name__ == "__main__":
            (training_args,) = HfArgumentParser(TrainingArguments).parse_args_into_dataclasses()
            main(training_args)
    """,
    "scripts/run_x_r1_zero.sh": """
        ACCELERATE_LOG_LEVEL=info accelerate launch \\
        --config_file recipes/zero3.yaml \\
        --num_processes=3 src/x_r1/grpo.py \\
        --output_dir output/x_r1 > ./output/x_r1_0dot5B_sampling.log 2>&1
    """,
}
ACCELERATE_CONFIG = "distributed_type: {}\nmixed_precision: bf16\nnum_processes: 3\n"


@pytest.mark.parametrize(
    ("init", "distributed_type", "bug"),
    [
        ("Trainer.__init__(self, model=model, args=args)", "DEEPSPEED", True),
        ("super().__init__(model=model, args=args)", "DEEPSPEED", True),
        ("super().__init__(model, reward_funcs, args=args)", "DEEPSPEED", True),
        ("Trainer.__init__(self, model=model, args=args)", "MULTI_GPU", False),  # bf16 AMP: fp32 logits
    ],
)
def test_a_trainer_subclass_loading_its_model_runs_compute_loss_on_it(
    init: str, distributed_type: str, bug: bool, tmp_path: Path
) -> None:
    files = {
        name: text.replace("INIT", init).replace("# MARK", "# expect: MP001" if bug else "")
        for name, text in SUBCLASS_LOADING_ITS_MODEL.items()
    }
    files["recipes/zero3.yaml"] = ACCELERATE_CONFIG.format(distributed_type)
    check_files(files, "MP001", tmp_path)


def test_a_launch_command_naming_a_config_the_repository_lacks_is_not_counted(tmp_path: Path) -> None:
    files = {
        name: text.replace("INIT", "super().__init__(model=model, args=args)")
        for name, text in SUBCLASS_LOADING_ITS_MODEL.items()
    }
    files = {name: text.replace("# MARK", "# expect: MP001") for name, text in files.items()}
    files["recipes/zero3.yaml"] = ACCELERATE_CONFIG.format("DEEPSPEED")
    # X-R1's README: a stale path to a config moved since.
    files["README.md"] = "accelerate launch --config_file recipes/accelerate_configs/zero3.yaml src/x_r1/grpo.py\n"
    check_files(files, "MP001", tmp_path)

    from mplint.api import lint_paths

    (finding,) = lint_paths([tmp_path], select=["MP001"]).findings
    assert "only when" not in finding.message  # the default configuration: the one command that can run


# `training_args.model_init_kwargs = ...` in the script: the arguments object holds it where a helper
# reads it (TRL's trainers normalise a dtype given as a string).
MODEL_INIT_KWARGS = """
    from dataclasses import dataclass

    import torch
    from transformers import AutoModelForCausalLM, HfArgumentParser, TrainingArguments


    @dataclass
    class ModelArguments:
        model_name_or_path: str = "Qwen/Qwen2.5-0.5B"
        torch_dtype: str = "{dtype}"


    def load_policy(name, args):
        model_init_kwargs = args.model_init_kwargs or {{}}
        torch_dtype = model_init_kwargs.get("torch_dtype")
        if isinstance(torch_dtype, torch.dtype) or torch_dtype == "auto" or torch_dtype is None:
            pass
        elif isinstance(torch_dtype, str):
            model_init_kwargs["torch_dtype"] = getattr(torch, torch_dtype)
        return AutoModelForCausalLM.from_pretrained(name, **model_init_kwargs)


    model_args, training_args = HfArgumentParser((ModelArguments, TrainingArguments)).parse_args_into_dataclasses()
    training_args.model_init_kwargs = {{"torch_dtype": {given}}}
    policy = load_policy(model_args.model_name_or_path, training_args)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)  # MARK
"""


@pytest.mark.parametrize(
    ("dtype", "given", "bug"),
    [
        ("bfloat16", "model_args.torch_dtype", True),  # a string the helper turns into a dtype
        ("bfloat16", "getattr(torch, model_args.torch_dtype)", True),  # a dtype it keeps
        ("float32", "model_args.torch_dtype", False),
        ("auto", "model_args.torch_dtype", False),  # the checkpoint's dtype: not known
    ],
)
def test_settings_stored_on_the_arguments_reach_the_helper_that_reads_them(dtype: str, given: str, bug: bool) -> None:
    source = MODEL_INIT_KWARGS.format(dtype=dtype, given=given)
    check(source.replace("# MARK", "# expect: MP003" if bug else ""), "MP003")


# alpaca_farm's DPO trainer (transformers pinned <=4.29.2): a reference copy of the model, wrapped by the
# Trainer's `_wrap_model`, and the policy are both run inside `compute_loss`. Where the pinned
# transformers enters CUDA autocast around `compute_loss` and does not yet prepare the policy with
# accelerate (before 4.30), the reference's logits and the policy's are bf16. From 4.30 accelerate's
# prepared forward is the only autocast (4.30 to 4.34 enter one around `compute_loss` only under
# fairscale's `sharded_ddp`), and the reference's logits are fp32. (A GPT-NeoX
# never upcasts its logits; a Llama does from 4.31.)
REFERENCE_TRAINER = """
import copy
from dataclasses import dataclass, field

import torch.nn.functional as F
import transformers


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    beta: float = field(default=0.1)


class Trainer(transformers.Trainer):
    def __init__(self, model, args, *argv, **kwargs):
        super().__init__(model, args, *argv, **kwargs)
        self.ref_model = self._wrap_model(copy.deepcopy(model)).eval()

    def compute_loss(self, model, inputs, return_outputs=False):
        ref_logits = self.ref_model(input_ids=inputs["input_ids_w"]).logits[..., :-1, :]
        ref_logprobs = -F.cross_entropy(ref_logits.transpose(-1, -2), inputs["labels_w"], reduction="none"){reference}
        logits = model(input_ids=inputs["input_ids_w"]).logits[..., :-1, :]
        logprobs = -F.cross_entropy(logits.transpose(-1, -2), inputs["labels_w"], reduction="none"){policy}
        return -F.logsigmoid(self.args.beta * (logprobs.sum(-1) - ref_logprobs.sum(-1))).mean()


def main():
    parser = transformers.HfArgumentParser((TrainingArguments,))
    (training_args,) = parser.parse_args_into_dataclasses()
    model = {load}
    Trainer(model=model, args=training_args).train()


if __name__ == "__main__":
    main()
"""

LAUNCH_BF16 = "torchrun --nproc_per_node=8 examples/dpo.py \\\n  --bf16 True \\\n  --output_dir out\n"


NEOX = 'transformers.GPTNeoXForCausalLM.from_pretrained("EleutherAI/pythia-1.4b")'
# A model the analysis cannot see built (a library's loader): the Trainer's `_wrap_model` still hands
# back a module.
LOADED_ELSEWHERE = 'common.make_generative_lm("EleutherAI/pythia-1.4b")'
# A class the analysis cannot tell, loading a checkpoint in its own dtype: a model of unknown kind too.
PICKED_CLASS = 'common.model_class().from_pretrained("EleutherAI/pythia-1.4b")'


@pytest.mark.parametrize(
    ("pin", "load", "reference", "policy"),
    [
        pytest.param("transformers>=4.26.0,<=4.29.2", NEOX, True, True, id="4.29-autocast-and-no-accelerate"),
        pytest.param("transformers==4.29.2", LOADED_ELSEWHERE, True, True, id="4.29-a-model-of-unknown-kind"),
        pytest.param("transformers==4.29.2", PICKED_CLASS, True, True, id="4.29-a-class-picked-at-run-time"),
        pytest.param("transformers==4.33.0", NEOX, False, False, id="4.33-accelerate-alone"),
        pytest.param("transformers==4.40.2", NEOX, False, False, id="4.40-accelerate-alone"),
        pytest.param("torch", NEOX, False, False, id="unpinned-the-version-is-not-known"),
    ],
)
def test_compute_loss_runs_under_the_autocast_of_the_pinned_transformers(
    pin: str, load: str, reference: bool, policy: bool, tmp_path: Path
) -> None:
    files = {
        "requirements.txt": f"{pin}\n",
        "examples/scripts/dpo.sh": LAUNCH_BF16,
        "examples/dpo.py": "from alpaca_farm import common\n"
        + REFERENCE_TRAINER.format(
            load=load,
            reference="  # expect: MP001" if reference else "",
            policy="  # expect: MP001" if policy else "",
        ),
    }
    check_files(files, "MP001", tmp_path)


# TRL's `PPOTrainer` (trl 0.11-0.14), copied by RL repositories (nanoRLHF's GRPO, RLOO, ReMax, ...):
# `__init__` never runs `Trainer.__init__`; it stores `self.args` and `self.model`, a wrapper of the
# policy, and calls the inherited `create_optimizer_and_scheduler`, which builds the Trainer's own
# optimizer over the wrapper's trainable parameters. Under LoRA those are the fp32 adapters, and the
# bf16 copies of the config's `modules_to_save` (a dataclass field's `default_factory`).
TRL_PPO_STYLE_TRAINER = """
    from dataclasses import dataclass, field

    import torch
    import torch.nn as nn
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Trainer
    from trl import PPOConfig


    @dataclass
    class GRPOConfig(PPOConfig):
        use_lora: bool = field(default=True)
        lora_r: int = field(default=64)
        modules_to_save: list[str] = field(default_factory=lambda: {modules_to_save})


    class PolicyAndValueWrapper(nn.Module):
        def __init__(self, policy) -> None:
            super().__init__()
            self.policy = policy

        def forward(self, **kwargs):
            return self.policy(**kwargs)


    class GRPOTrainer(Trainer):
        def __init__(self, args, policy):
            self.args = args
            self.model = PolicyAndValueWrapper(policy)
            self.create_optimizer_and_scheduler(num_training_steps=args.total_episodes){expect}


    training_args = GRPOConfig(output_dir="out", bf16=True, learning_rate=1e-5, total_episodes=1000)
    policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct", torch_dtype=torch.bfloat16)
    if training_args.use_lora:
        lora_config = LoraConfig(
            r=training_args.lora_r,
            target_modules=["q_proj", "v_proj"],
            modules_to_save=training_args.modules_to_save,
        )
        policy = get_peft_model(policy, lora_config)
    trainer = GRPOTrainer(training_args, policy)
"""


@pytest.mark.parametrize(
    ("modules_to_save", "bug"),
    [('["embed_tokens", "lm_head"]', True), ("[]", False)],
    ids=["bf16-copies-of-modules-to-save", "fp32-adapters-alone"],
)
def test_an_inherited_create_optimizer_and_scheduler_builds_the_trainers_optimizer(
    modules_to_save: str, bug: bool
) -> None:
    expect = "  # expect: MP003" if bug else ""
    source = TRL_PPO_STYLE_TRAINER.format(modules_to_save=modules_to_save, expect=expect)
    check(source, "MP003")


def test_create_optimizer_and_scheduler_builds_with_the_subclass_create_optimizer() -> None:
    # nanoRLHF's PPO trainer overrides `create_optimizer` (per-model learning rates): the optimizer is
    # built there, over the parameters it picks, and not a second time as the Trainer's own.
    source = TRL_PPO_STYLE_TRAINER.format(modules_to_save='["embed_tokens", "lm_head"]', expect="").replace(
        "    class GRPOTrainer(Trainer):\n",
        "    class GRPOTrainer(Trainer):\n"
        "        def create_optimizer(self):\n"
        "            head = self.model.policy.lm_head\n"
        "            self.optimizer = torch.optim.AdamW(head.parameters(), lr=1e-5)  # expect: MP003\n\n",
    )
    check(source, "MP003")


def test_the_message_names_the_modules_to_save_and_the_trainers_method() -> None:
    source = TRL_PPO_STYLE_TRAINER.format(modules_to_save='["embed_tokens", "lm_head"]', expect="")
    (finding,) = lint(source, "MP003")
    assert finding.message.startswith("the optimizer Trainer.create_optimizer_and_scheduler builds over bfloat16")
    assert "whose modules_to_save train as copies of a base loaded in bfloat16 at train.py:35" in finding.message


@pytest.mark.parametrize("module", ["trl.trainer.utils", "trl.trainer.dpo_trainer", "trl.trainer.grpo_trainer"])
def test_trls_selective_log_softmax_wherever_it_is_imported_from(module: str) -> None:
    # TRL's trainer modules import it from `trl/trainer/utils.py`; InternVL's DPO trainer imports it
    # from `trl.trainer.dpo_trainer`.
    source = f"""
        import torch
        from transformers import AutoModelForCausalLM
        from {module} import selective_log_softmax

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)


        def token_logps(input_ids):
            logits = policy(input_ids=input_ids).logits[:, :-1]
            return selective_log_softmax(logits, input_ids[:, 1:])  # expect: MP001


        token_logps(batch)
        """
    check(source, "MP001")
