"""PEFT and bitsandbytes in the precision model (peft 0.21.2 mapping_func.py, tuners/tuners_utils.py,
tuners/lora/layer.py, utils/other.py; bitsandbytes 0.50.2 nn/modules.py): LoRA adapters are fp32
unless `autocast_adapter_dtype=False`; the wrapped model's outputs are the base's;
`prepare_model_for_kbit_training` makes every non-4-bit parameter fp32; a 4-bit layer returns its
input's dtype, not `bnb_4bit_compute_dtype`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mplint.api import lint_paths
from mplint.findings import Severity

from .casekit import bug, check, check_files, ok

QLORA = """
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", quantization_config=bnb, {dtype})
    {prepare}
    model = get_peft_model(model, LoraConfig(r=16, task_type="CAUSAL_LM"){adapter_args})
    optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=2e-4){opt_expect}

    def sequence_logps(policy, batch):
        logits = policy(input_ids=batch["input_ids"]).logits
        return F.log_softmax(logits, dim=-1){logps_expect}

    for batch in loader:
        loss = -sequence_logps(model, batch).mean()
        loss.backward()
        optimizer.step()
"""


def qlora(dtype: str, prepare: str, adapter_args: str = "", *, logps: bool = False, opt: bool = False) -> str:
    return QLORA.format(
        dtype=dtype,
        prepare=prepare,
        adapter_args=adapter_args,
        logps_expect="  # expect: MP001" if logps else "",
        opt_expect="  # expect: MP003" if opt else "",
    )


LOGITS = [
    pytest.param(
        qlora("torch_dtype=torch.bfloat16", "model = prepare_model_for_kbit_training(model)"), id="prepared-fp32"
    ),
    pytest.param(qlora("torch_dtype=torch.bfloat16", "", logps=True), id="unprepared-bf16-logits"),
    pytest.param(qlora('torch_dtype="auto"', ""), id="auto-dtype-unknown"),
    pytest.param(qlora("device_map={'': 0}", ""), id="no-dtype-compute-dtype-is-not-the-output"),
]


@pytest.mark.parametrize("source", LOGITS)
def test_a_qlora_models_logits(source: str) -> None:
    check(source, "MP001")


ADAPTERS = [
    pytest.param(qlora("torch_dtype=torch.bfloat16", ""), id="fp32-adapters-by-default"),
    pytest.param(
        qlora("torch_dtype=torch.bfloat16", "", ", autocast_adapter_dtype=False", opt=True),
        id="bf16-adapters-without-autocast-adapter-dtype",
    ),
    pytest.param(
        qlora("torch_dtype=torch.bfloat16", "", ", autocast_adapter_dtype=True"), id="fp32-adapters-asked-for"
    ),
]


@pytest.mark.parametrize("source", ADAPTERS)
def test_lora_adapters_dtype(source: str) -> None:
    check(source, "MP003")


CASES = [
    ok(
        "whole-peft-model-parameters-update-fp32-adapters",
        """
        import torch
        import peft
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        lora = peft.get_peft_model(base, peft.LoraConfig(r=8))
        optimizer = torch.optim.AdamW(lora.parameters(), lr=1e-4)
        """,
    ),
    bug(
        "the-base-model-is-still-bf16",
        """
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        lora = get_peft_model(base, LoraConfig(r=8))
        optimizer = torch.optim.AdamW(base.parameters(), lr=1e-4)  # expect: MP003
        """,
    ),
    # TOFU merges a saved LoRA checkpoint into its bf16 base before unlearning with full fine-tuning:
    # the merged model is the base, every weight trainable in bf16.
    bug(
        "a-merged-lora-model-is-its-half-base",
        """
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        model = PeftModel.from_pretrained(model, model_id=args.lora_path)
        model = model.merge_and_unload()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
        """,
    ),
    ok(
        "a-merged-lora-model-over-an-fp32-base",
        """
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2")
        model = PeftModel.from_pretrained(model, model_id=args.lora_path).merge_and_unload()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        """,
    ),
]


# PEFT trains a copy of each module to save in that module's dtype (a `ModulesToSaveWrapper` is no
# tuner layer: its copy is never upcast); a sequence-classification model saves its head (llama-trl's
# LoRA reward model over a bf16 base).
REWARD_MODEL = """
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModelForSequenceClassification, Trainer, TrainingArguments

    peft_config = LoraConfig(task_type={task}, r=8, lora_alpha=32, lora_dropout=0.1{saved})
    model = AutoModelForSequenceClassification.from_pretrained("huggyllama/llama-7b", num_labels=1, {dtype})
    model = get_peft_model(model, peft_config)
    args = TrainingArguments(output_dir="out", bf16=True, learning_rate=2e-5)
    trainer = Trainer(model=model, args=args, train_dataset=train_ds){expect}
    trainer.train()
"""


@pytest.mark.parametrize(
    ("task", "saved", "dtype", "bug"),
    [
        pytest.param("TaskType.SEQ_CLS", "", "torch_dtype=torch.bfloat16", True, id="a-bf16-reward-head"),
        pytest.param('"TOKEN_CLS"', "", "torch_dtype=torch.bfloat16", True, id="a-token-classifier-head"),
        pytest.param("TaskType.CAUSAL_LM", "", "torch_dtype=torch.bfloat16", False, id="adapters-alone"),
        pytest.param('"CAUSAL_LM"', ', modules_to_save=["embed_tokens", "lm_head"]', "torch_dtype=torch.bfloat16", True, id="saved-embeddings"),
        pytest.param('"CAUSAL_LM"', ", modules_to_save=args.modules_to_save", "torch_dtype=torch.bfloat16", False, id="saved-modules-unknown"),
        pytest.param("TaskType.SEQ_CLS", "", "cache_dir=None", False, id="an-fp32-head"),
    ],
)
def test_modules_to_save_are_trained_in_the_base_dtype(task: str, saved: str, dtype: str, bug: bool) -> None:
    check(REWARD_MODEL.format(task=task, saved=saved, dtype=dtype, expect="  # expect: MP003" if bug else ""), "MP003")


# LLM-Tuning's RLHF/reward_modeling.py: the model class comes from a remote-code modelling file of the
# repository, whose base shadows the transformers class it derives from (Baichuan's, ChatGLM's and
# InternLM's files all write `class PreTrainedModel(PreTrainedModel)`).
REMOTE_CODE_MODEL = """
    import torch.nn as nn
    from transformers import PreTrainedModel


    class PreTrainedModel({base}):
        config_class = dict
        base_model_prefix = "model"


    class BaichuanForSequenceClassification(PreTrainedModel):
        def __init__(self, config):
            super().__init__(config)
            self.num_labels = config.num_labels
            self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
"""
REMOTE_CODE_REWARD = """
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import Trainer, TrainingArguments
    from modeling_baichuan_for_cls import BaichuanForSequenceClassification

    peft_config = LoraConfig(task_type=TaskType.SEQ_CLS, inference_mode=False, r=4, lora_alpha=32)
    model = BaichuanForSequenceClassification.from_pretrained(
        "baichuan-inc/baichuan-7B", num_labels=1, torch_dtype=torch.bfloat16, trust_remote_code=True
    )
    model = get_peft_model(model, peft_config)
    trainer = Trainer(model=model, args=TrainingArguments(output_dir="out", bf16=True)){expect}
    trainer.train()
"""


@pytest.mark.parametrize(
    ("base", "bug"),
    [
        pytest.param("PreTrainedModel", True, id="shadowing-the-transformers-base"),
        pytest.param("nn.Module", False, id="a-plain-module-is-no-pretrained-model"),
    ],
)
def test_a_remote_code_class_whose_base_shadows_transformers(base: str, bug: bool, tmp_path: Path) -> None:
    files = {
        "modeling_baichuan_for_cls.py": REMOTE_CODE_MODEL.format(base=base),
        "reward_modeling.py": REMOTE_CODE_REWARD.format(expect="  # expect: MP003" if bug else ""),
    }
    check_files(files, "MP003", tmp_path)


@pytest.mark.parametrize("source", CASES)
def test_peft_parameters(source: str) -> None:
    check(source, "MP003")


# openvla/openvla vla-scripts/finetune.py (pyproject.toml pins peft==0.11.1): a bf16 VLA wrapped in
# LoRA, wrapped in DDP, its trainable parameters handed to AdamW.
OPENVLA_FINETUNE = """
import torch
from peft import LoraConfig, get_peft_model
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.optim import AdamW
from transformers import AutoModelForVision2Seq


def finetune(vla_path="openvla/openvla-7b", lora_rank=32, learning_rate=5e-4):
    vla = AutoModelForVision2Seq.from_pretrained(vla_path, torch_dtype=torch.bfloat16, trust_remote_code=True)
    vla = vla.to(0)
    lora_config = LoraConfig(r=lora_rank, lora_alpha=min(lora_rank, 16), target_modules="all-linear")
    vla = get_peft_model(vla, lora_config)
    vla = DDP(vla, device_ids=[0], find_unused_parameters=True, gradient_as_bucket_view=True)
    trainable_params = [param for param in vla.parameters() if param.requires_grad]
    optimizer = AdamW(trainable_params, lr=learning_rate){expect}
    return optimizer


if __name__ == "__main__":
    finetune()
"""


@pytest.mark.parametrize(
    ("pin", "half_adapters"),
    [
        pytest.param("peft==0.11.1", True, id="0.11-adapters-in-the-base-dtype"),
        pytest.param("peft>=0.10.0,<=0.11.1", True, id="at-most-0.11.1"),
        pytest.param("peft==0.12.0", False, id="0.12-upcasts-them"),
        pytest.param("peft==0.6.2", False, id="0.6-creates-them-fp32"),
        pytest.param("peft==0.7.0", True, id="0.7-in-the-base-dtype"),
        pytest.param("peft", False, id="unpinned-the-newest-upcasts"),
    ],
)
def test_lora_adapters_by_the_pinned_peft(pin: str, half_adapters: bool, tmp_path: Path) -> None:
    """peft creates LoRA adapters in the base layer's dtype from 0.7.0 to 0.11.1 (fp32 before) and
    upcasts half ones to fp32 from 0.12.0 (huggingface/peft#1706): an optimizer over a bf16 model's
    adapters is MP003's case only under a pin in that window."""
    files = {
        "pyproject.toml": f'[project]\nname = "openvla"\ndependencies = ["transformers==4.40.1", "{pin}"]\n',
        "vla-scripts/finetune.py": OPENVLA_FINETUNE.format(expect="  # expect: MP003" if half_adapters else ""),
    }
    check_files(files, "MP003", tmp_path)


# The script as openvla writes it: its configuration a dataclass that `@draccus.wrap()` parses from
# the command line into the entry point's annotated parameter.
OPENVLA_DRACCUS = """
from dataclasses import dataclass

import draccus
import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from torch.optim import AdamW
from transformers import AutoModelForVision2Seq, BitsAndBytesConfig


@dataclass
class FinetuneConfig:
    vla_path: str = "openvla/openvla-7b"
    use_lora: bool = True
    lora_rank: int = 32
    use_quantization: bool = {use_quantization}
    learning_rate: float = 5e-4


@draccus.wrap()
def finetune(cfg: FinetuneConfig) -> None:
    quantization_config = None
    if cfg.use_quantization:
        quantization_config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
    vla = AutoModelForVision2Seq.from_pretrained(
        cfg.vla_path, torch_dtype=torch.bfloat16, quantization_config=quantization_config, trust_remote_code=True
    )
    if cfg.use_quantization:
        vla = prepare_model_for_kbit_training(vla)
    else:
        vla = vla.to(0)
    if cfg.use_lora:
        vla = get_peft_model(vla, LoraConfig(r=cfg.lora_rank, target_modules="all-linear"))
    trainable_params = [param for param in vla.parameters() if param.requires_grad]
    optimizer = AdamW(trainable_params, lr=cfg.learning_rate){expect}


if __name__ == "__main__":
    finetune()
"""


@pytest.mark.parametrize(
    ("use_quantization", "severity"),
    [
        pytest.param("False", Severity.ERROR, id="bf16-base-by-default"),
        # The k-bit path is fp32; without it (`use_quantization=False`, tested twice: the whole function
        # runs again under it) the base stays bf16 and so do the adapters peft 0.11.1 makes.
        pytest.param("True", Severity.WARNING, id="k-bit-preparation-by-default-makes-it-fp32"),
    ],
)
def test_a_draccus_configured_entry_point(use_quantization: str, severity: Severity, tmp_path: Path) -> None:
    """`@draccus.wrap()` gives the entry point its config dataclass with its defaults: the branch
    that runs is the default one, not both joined; the other is a warning naming its condition."""
    source = OPENVLA_DRACCUS.format(use_quantization=use_quantization, expect="  # expect: MP003")
    files = {"pyproject.toml": '[project]\nname = "openvla"\ndependencies = ["peft==0.11.1"]\n', "finetune.py": source}
    check_files(files, "MP003", tmp_path)
    (finding,) = lint_paths([tmp_path], select=["MP003"]).findings
    assert finding.severity is severity
    assert ("`cfg.use_quantization` is false" in finding.message) is (severity is Severity.WARNING)


# qlora.py's `get_accelerate_model` (copied by LLaVA-RLHF and many QLoRA trainers): the arguments of
# three dataclasses merged with `argparse.Namespace(**vars(...))`, the adapters cast to bf16 by a loop
# over `named_modules()` when `--bf16` is given (a flag the arguments inherit from transformers).
QLORA_PY = """
    import argparse
    from dataclasses import dataclass, field

    import torch
    import transformers
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from peft.tuners.lora import LoraLayer


    @dataclass
    class ModelArguments:
        model_name_or_path: str = field(default="huggyllama/llama-7b")


    @dataclass
    class TrainingArguments(transformers.Seq2SeqTrainingArguments):
        full_finetune: bool = field(default=False)


    def get_accelerate_model(args):
        model = transformers.AutoModelForCausalLM.from_pretrained(
            args.model_name_or_path, load_in_4bit=True, torch_dtype=torch.bfloat16 if args.bf16 else torch.float32
        )
        if not args.full_finetune:
            model = prepare_model_for_kbit_training(model)
            model = get_peft_model(model, LoraConfig(r=64, task_type="CAUSAL_LM"))
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer):
                if args.bf16:
                    module = module.to(torch.bfloat16)
            if "norm" in name:
                module = module.to(torch.float32)
        return model


    def train():
        hfparser = transformers.HfArgumentParser((ModelArguments, TrainingArguments))
        model_args, training_args, extra_args = hfparser.parse_args_into_dataclasses(return_remaining_strings=True)
        args = argparse.Namespace(**vars(model_args), **vars(training_args))
        model = get_accelerate_model(args)
        trainer = transformers.Seq2SeqTrainer(model=model, args=training_args){expect}
        trainer.train()


    if __name__ == "__main__":
        train()
"""


@pytest.mark.parametrize(
    ("command", "bug"),
    [
        pytest.param("python qlora.py --bf16 --output_dir out", True, id="bf16-adapters"),
        pytest.param("python qlora.py --output_dir out", False, id="fp32-adapters"),
    ],
)
def test_adapters_cast_by_a_loop_over_named_modules(command: str, bug: bool, tmp_path: Path) -> None:
    files = {"qlora.py": QLORA_PY.format(expect="  # expect: MP003" if bug else ""), "finetune.sh": command + "\n"}
    check_files(files, "MP003", tmp_path)


# diffusers' LoRA trainers: `add_adapter` is peft's `inject_adapter_in_model`, which never upcasts.
ADD_ADAPTER = """
    import torch
    from diffusers import FluxTransformer2DModel
    from peft import LoraConfig

    transformer = FluxTransformer2DModel.from_pretrained("black-forest-labs/FLUX.1-dev", torch_dtype=torch.bfloat16)
    transformer.requires_grad_(False)
    transformer.add_adapter(LoraConfig(r=16, target_modules=["to_q", "to_k", "to_v"]))
    params = [p for p in transformer.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4){expect}
"""


@pytest.mark.parametrize(
    ("pin", "half_adapters"),
    [
        pytest.param("peft==0.6.2", False, id="0.6-creates-them-fp32"),
        pytest.param("peft==0.7.0", True, id="0.7-in-the-base-dtype"),
        pytest.param("peft==0.17.0", True, id="no-upcast-without-a-peft-model"),
        pytest.param("peft", True, id="unpinned-the-newest"),
    ],
)
def test_adapters_added_to_a_model_by_the_pinned_peft(pin: str, half_adapters: bool, tmp_path: Path) -> None:
    files = {
        "requirements.txt": f"diffusers\n{pin}\n",
        "train.py": ADD_ADAPTER.format(expect="  # expect: MP003" if half_adapters else ""),
    }
    check_files(files, "MP003", tmp_path)


def test_a_loop_over_a_model_without_adapters_casts_by_its_other_tests(tmp_path: Path) -> None:
    # The same loop over a model PEFT never wrapped: its `LoraLayer` test matches nothing, the head
    # cast makes the model half in part.
    source = QLORA_PY.format(expect="").replace(
        'if "norm" in name:\n                module = module.to(torch.float32)',
        'if "lm_head" in name:\n                module = module.to(torch.bfloat16)',
    )
    source = source.replace("if not args.full_finetune:", "if args.full_finetune:")
    source = source.replace("torch.bfloat16 if args.bf16 else torch.float32", "torch.float32")
    source = source.replace(
        "trainer = transformers.Seq2SeqTrainer(model=model, args=training_args)",
        "optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)  # expect: MP003",
    )
    check_files({"qlora.py": source, "finetune.sh": "python qlora.py --bf16 --output_dir out\n"}, "MP003", tmp_path)


def test_adapters_cast_back_to_fp32_in_a_list(tmp_path: Path) -> None:
    # cogvideox-factory's Mochi trainer: `cast_training_params([transformer], dtype=torch.float32)`.
    source = ADD_ADAPTER.format(expect="").replace(
        "    params = [",
        "    cast_training_params([transformer], dtype=torch.float32)\n    params = [",
    )
    source = source.replace("from peft import LoraConfig", "from diffusers.training_utils import cast_training_params\n    from peft import LoraConfig")
    check_files({"requirements.txt": "diffusers\npeft\n", "train.py": source}, "MP003", tmp_path)


# diffusers' train_dreambooth_lora_sdxl.py: the adapters upcast only under fp16, through a list of
# the trained models built in steps.
DREAMBOOTH_LORA = """
    import argparse

    import torch
    from diffusers import UNet2DConditionModel
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from transformers import CLIPTextModel


    def main(args):
        weight_dtype = {{"fp16": torch.float16, "bf16": torch.bfloat16}}[args.mixed_precision]
        unet = UNet2DConditionModel.from_pretrained(args.model, subfolder="unet")
        text_encoder_one = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder")
        unet.requires_grad_(False)
        text_encoder_one.requires_grad_(False)
        unet.to("cuda", dtype=weight_dtype)
        text_encoder_one.to("cuda", dtype=weight_dtype)
        unet.add_adapter(LoraConfig(r=4, target_modules=["to_q", "to_v"]))
        text_encoder_one.add_adapter(LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
        if args.mixed_precision == "fp16":
            models = [unet]
            models.extend([text_encoder_one])
            cast_training_params(models, dtype=torch.float32)
        params = list(filter(lambda p: p.requires_grad, unet.parameters()))
        params += list(filter(lambda p: p.requires_grad, text_encoder_one.parameters()))
        optimizer = torch.optim.AdamW(params, lr=1e-4){expect}


    if __name__ == "__main__":
        parser = argparse.ArgumentParser()
        parser.add_argument("--model", default="stabilityai/stable-diffusion-xl-base-1.0")
        parser.add_argument("--mixed_precision", default="{default}", choices=["fp16", "bf16"])
        main(parser.parse_args())
"""


@pytest.mark.parametrize("default", [pytest.param("fp16", id="upcast-under-fp16-not-bf16"), pytest.param("bf16", id="bf16")])
def test_adapters_upcast_through_a_list_of_models(default: str, tmp_path: Path) -> None:
    files = {"requirements.txt": "diffusers\npeft\n", "train.py": DREAMBOOTH_LORA.format(default=default, expect="  # expect: MP003")}
    check_files(files, "MP003", tmp_path)
    (finding,) = [found for found in lint_paths([tmp_path], select=["MP003"]).findings]
    assert ("only when `--mixed_precision bf16` is given" in finding.message) is (default == "fp16")


# diffusers' DPO and Würstchen LoRA trainers: the trainable parameters upcast by a loop, under fp16.
UPCAST_LOOP = """
    for param in unet.parameters():
        if param.requires_grad:
            param.data = param.to(torch.float32)
"""
# diffusers' LCM LoRA trainer: the optimizer built first, the adapters upcast before it steps.
UPCAST_AFTER = """
    optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, unet.parameters()), lr=1e-4)
    cast_training_params(unet, dtype=torch.float32)
"""


@pytest.mark.parametrize(
    ("upcast", "bug"),
    [
        pytest.param(UPCAST_LOOP, False, id="a-loop-over-the-trainable-parameters"),
        pytest.param(UPCAST_LOOP.replace("if param.requires_grad:", "if param.ndim > 1:"), True, id="other-parameters"),
        pytest.param(UPCAST_AFTER, False, id="after-the-optimizer-before-it-steps"),
    ],
)
def test_adapters_upcast_before_the_optimizer_steps(upcast: str, bug: bool, tmp_path: Path) -> None:
    source = textwrap.dedent(
        """
        import torch
        from diffusers import UNet2DConditionModel
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        unet = UNet2DConditionModel.from_pretrained("sdxl", subfolder="unet", torch_dtype=torch.float16)
        unet.requires_grad_(False)
        unet.add_adapter(LoraConfig(r=4, target_modules=["to_q", "to_v"]))
        """
    ) + textwrap.dedent(upcast)
    if "optimizer =" not in upcast:
        source += "optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4)\n"
    lines = source.splitlines()
    if bug:
        lines = [line + "  # expect: MP003" if line.startswith("optimizer =") else line for line in lines]
    source = "\n".join(lines) + "\n" + "for batch in loader:\n    unet(batch).sample.float().mean().backward()\n    optimizer.step()\n"
    check_files({"requirements.txt": "diffusers\npeft\n", "train.py": source}, "MP003", tmp_path)


# rlhf-length-biases' PPO policy: TRL's value-head model loaded with `peft_config=` (trl 0.4-0.11
# `PreTrainedModelWrapper.from_pretrained`: `prepare_model_for_kbit_training` for a k-bit model, then
# `get_peft_model`), trained through its requires-grad parameters: the fp32 adapters.
VALUE_HEAD_POLICY = """
import torch
from peft import LoraConfig
from transformers import Adafactor
from trl import AutoModelForCausalLMWithValueHead

model = AutoModelForCausalLMWithValueHead.from_pretrained(
    "huggyllama/llama-7b", load_in_8bit=True, torch_dtype=torch.bfloat16{peft}
)
optimizer = Adafactor(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-5){expect}
"""


@pytest.mark.parametrize(
    ("peft", "bug"),
    [
        pytest.param(", peft_config=LoraConfig(r=16, lora_alpha=32)", False, id="peft-adapters"),
        pytest.param(", peft_config=None", True, id="no-peft-the-bf16-model-itself"),
    ],
)
def test_a_value_head_model_loaded_with_a_peft_config_trains_its_adapters(peft: str, bug: bool) -> None:
    check(VALUE_HEAD_POLICY.format(peft=peft, expect="  # expect: MP003" if bug else ""), "MP003")


# A module of the linted code holding a LoRA model (TRL's `PolicyAndValueWrapper`, a value head beside
# the policy): an optimizer over its parameters updates the trainable ones, the fp32 adapters and the
# fp32 head, and the half copies of the modules to save where the config names some; the frozen bf16
# base is never updated. A filter by `requires_grad` keeps those copies; one by name may not.
POLICY_AND_VALUE_WRAPPER = """
    import torch
    import torch.nn as nn
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM


    class PolicyAndValueWrapper(nn.Module):
        def __init__(self, policy):
            super().__init__()
            self.policy = policy
            self.value_head = nn.Linear(1536, 1)


    policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct", torch_dtype=torch.bfloat16)
"""
WRAPPED_LORA = POLICY_AND_VALUE_WRAPPER + """
    policy = get_peft_model(policy, LoraConfig(r=16, target_modules=["q_proj", "v_proj"]{saved}))
    model = PolicyAndValueWrapper(policy)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5){expect}
    trainable = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5){expect}
    adapters = torch.optim.AdamW([p for n, p in model.named_parameters() if "lora_" in n], lr=1e-5)
"""


@pytest.mark.parametrize(
    ("saved", "bug"),
    [("", False), (', modules_to_save=["lm_head"]', True)],
    ids=["fp32-adapters-beside-an-fp32-head", "bf16-copy-of-the-lm-head"],
)
def test_a_module_holding_a_lora_model_trains_its_trainable_parameters(saved: str, bug: bool) -> None:
    check(WRAPPED_LORA.format(saved=saved, expect="  # expect: MP003" if bug else ""), "MP003")


# nanoRLHF's PPO `create_optimizer`: one learning rate per model of the wrapper, the parameters
# picked by name. The policy's pick holds the bf16 copies of its modules to save; the value head's
# pick is fp32.
PICKED_BY_NAME = POLICY_AND_VALUE_WRAPPER + """
    lora = LoraConfig(r=16, target_modules=["q_proj", "v_proj"], modules_to_save=["embed_tokens", "lm_head"])
    model = PolicyAndValueWrapper(get_peft_model(policy, lora))
    decay = [n for n, _ in model.named_parameters() if "bias" not in n]
    groups = [
        {{"params": [p for n, p in model.named_parameters() if n in decay and {pick} and p.requires_grad]}},
        {{"params": [p for n, p in model.named_parameters() if n not in decay and {pick} and p.requires_grad]}},
    ]
    optimizer = torch.optim.AdamW(groups, lr=1e-5){expect}
"""


@pytest.mark.parametrize(
    ("pick", "bug"),
    [('"policy." in n', True), ("n.startswith('policy')", True), ('"value_head." in n', False)],
    ids=["the-policy-by-substring", "the-policy-by-prefix", "the-fp32-value-head"],
)
def test_a_child_of_a_wrapper_picked_by_name(pick: str, bug: bool) -> None:
    check(PICKED_BY_NAME.format(pick=pick, expect="  # expect: MP003" if bug else ""), "MP003")
