"""Transformers' causal LMs whose forward upcasts their logits, by the transformers version the
repository pins (`causal_lm`, read from the wheels of transformers 4.25.1 to 5.25.0; `pins`):
`LlamaForCausalLM` returns fp32 logits from 4.31.0 to 4.45.x whatever its weights, not in 4.29 nor
from 4.46 (nor in the newest, what an unpinned repository runs); `OPTForCausalLM` never does.

Cases are shaped after Joyce94/LLM-RLHF-Tuning (requirements.txt pinning transformers==4.31.0, the
class picked from `MODEL_CLASSES[model_args.model_type]`, an fp16 load through `**config_kwargs`, a
LoRA-wrapped actor whose adapter-disabled forward gives the reference logits), ReMax (the model run
by a bf16 DeepSpeed engine) and SimPO (environment.yml pinning transformers==4.44.2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mplint.analysis.frameworks.pins import ANY_RELEASE, pinned_version
from mplint.analysis.torch_api import is_transformers_model
from mplint.api import lint_paths

from .casekit import check_files

PARSER_ARGS = """
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class ModelArguments:
    sft_model_path: Optional[str] = field(default=None)
    model_type: Optional[str] = field(default="{model_type}")
"""

TRAINER = """
import torch.nn.functional as F


def get_log_probs(logits, labels):
    log_probs = F.log_softmax(logits, dim=-1){expect}
    return log_probs.gather(dim=-1, index=labels.unsqueeze(-1)).squeeze(-1)


def reference_log_probs(actor_model, sequences):
    with actor_model.disable_adapter():
        ref_logits = actor_model(**sequences, return_dict=True).logits
    return get_log_probs(ref_logits[:, :-1, :], sequences["input_ids"][:, 1:])


def train(actor_model, loader):
    for sequences in loader:
        ref_log_probs = reference_log_probs(actor_model, sequences)
"""

RUN_PPO = """
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoTokenizer, HfArgumentParser, LlamaForCausalLM, LlamaTokenizer, OPTForCausalLM

from utils.parser_args import ModelArguments
from utils.ppo_trainer import train

MODEL_CLASSES = {
    "llama": (AutoConfig, LlamaTokenizer, LlamaForCausalLM),
    "opt": (AutoConfig, AutoTokenizer, OPTForCausalLM),
}


def load_actor(model_args):
    config_kwargs = {"torch_dtype": torch.float16, "low_cpu_mem_usage": True}
    config_class, tokenizer_class, model_class = MODEL_CLASSES[model_args.model_type]
    model = model_class.from_pretrained(model_args.sft_model_path, **config_kwargs)
    return get_peft_model(model, LoraConfig(r=8, lora_alpha=32))


def main():
    parser = HfArgumentParser(ModelArguments)
    (model_args,) = parser.parse_args_into_dataclasses()
    train(load_actor(model_args), loader)


if __name__ == "__main__":
    main()
"""


def llm_rlhf_tuning(dependencies: dict[str, str], *, model_type: str = "llama", half_logits: bool) -> dict[str, str]:
    return {
        **dependencies,
        "script/utils/parser_args.py": PARSER_ARGS.format(model_type=model_type),
        "script/utils/ppo_trainer.py": TRAINER.format(expect="  # expect: MP001" if half_logits else ""),
        "script/run_ppo.py": RUN_PPO,
    }


def requirements(line: str) -> dict[str, str]:
    return {"requirements.txt": f"accelerate==0.21.0\npeft==0.4.0\n{line}\ntrl==0.5.0\n"}


VERSIONS = [
    pytest.param(requirements("transformers==4.31.0"), False, id="4.31-upcasts"),
    pytest.param(requirements("transformers==4.45.2"), False, id="4.45-upcasts"),
    pytest.param(requirements("transformers ~= 4.31.0  # any 4.31 release"), False, id="compatible-release"),
    pytest.param(requirements("transformers==4.29.2"), True, id="4.29-does-not-upcast"),
    pytest.param(requirements("transformers>=4.26.0,<=4.29.2"), True, id="at-most-4.29"),
    pytest.param(requirements("transformers==4.46.0"), True, id="4.46-upcasts-only-for-the-loss"),
    pytest.param(requirements("transformers>=4.31.0"), True, id="a-range-runs-the-newest"),
    pytest.param({}, True, id="no-pin-runs-the-newest"),
    pytest.param(requirements("# transformers==4.31.0\ntransformers"), True, id="a-pin-commented-out"),
    pytest.param(
        {"requirements.txt": "transformers==4.31.0\n", "setup.py": "setup(install_requires=['transformers==4.29.2'])"},
        True,
        id="files-that-disagree",
    ),
]


@pytest.mark.parametrize(("dependencies", "half_logits"), VERSIONS)
def test_a_llama_loaded_half_by_the_pinned_version(
    dependencies: dict[str, str], half_logits: bool, tmp_path: Path
) -> None:
    check_files(llm_rlhf_tuning(dependencies, half_logits=half_logits), "MP001", tmp_path)


def test_opt_never_upcasts_its_logits(tmp_path: Path) -> None:
    project = llm_rlhf_tuning(requirements("transformers==4.31.0"), model_type="opt", half_logits=True)
    check_files(project, "MP001", tmp_path)


DIRECT = """
import deepspeed
import torch
import torch.nn.functional as F
from transformers import {model_class}

ds_config = {{"train_micro_batch_size_per_gpu": 1, "bf16": {{"enabled": True}}}}


class Actor:
    def __init__(self, path):
        model = {model_class}.from_pretrained(path)
        self.engine, *_ = deepspeed.initialize(model=model, config=ds_config)
        self.ref = {model_class}.from_pretrained(path, torch_dtype=torch.bfloat16)
        self.optimizer = torch.optim.AdamW(self.ref.parameters(), lr=1e-5)  # expect: MP003

    def logprobs(self, input_ids):
        logits = self.engine(input_ids=input_ids).logits
        ref_logits = self.ref(input_ids)[0]
        logprobs = F.log_softmax(logits, dim=-1){expect}
        ref_logprobs = F.log_softmax(ref_logits, dim=-1){expect}
        return logprobs, ref_logprobs
"""


@pytest.mark.parametrize(
    ("model_class", "half_logits"),
    [
        pytest.param("LlamaForCausalLM", False, id="llama"),
        pytest.param("MistralForCausalLM", False, id="mistral"),
        pytest.param("OPTForCausalLM", True, id="opt"),
        pytest.param("GPTNeoXForCausalLM", True, id="gpt-neox"),
    ],
)
def test_a_model_run_by_a_deepspeed_engine_or_loaded_bf16(model_class: str, half_logits: bool, tmp_path: Path) -> None:
    """The forward upcasts whatever runs the weights in bf16; the parameters stay bf16 (MP003)."""
    source = DIRECT.format(model_class=model_class, expect="  # expect: MP001" if half_logits else "")
    for code in ("MP001", "MP003"):
        check_files({"environment.yml": SIMPO_ENVIRONMENT, "actor.py": source}, code, tmp_path)


SIMPO_ENVIRONMENT = """
name: simpo
channels:
  - conda-forge
dependencies:
  - python=3.10
  - pip:
    - sentence-transformers==2.2.2
    - transformers==4.44.2
    - transformers-stream-generator==0.0.4
"""


@pytest.mark.parametrize(
    ("name", "text", "version"),
    [
        pytest.param("requirements.txt", "torch==2.0.1\ntransformers==4.31.0\n", (4, 31, 0), id="requirements"),
        pytest.param("requirements-dev.txt", "transformers[torch]==4.33.2 ; python_version >= '3.9'", (4, 33, 2)),
        pytest.param("requirement.txt", "torch==2.1.2\ntransformers==4.36.2\n", (4, 36, 2), id="singular"),  # LESS
        pytest.param("environment.yml", SIMPO_ENVIRONMENT, (4, 44, 2), id="environment-pip"),
        pytest.param("environment.yaml", "dependencies:\n  - transformers=4.26\n", (4, 26, 0), id="conda"),
        pytest.param(
            "setup.py",
            'setup(\n    install_requires=[\n        "accelerate>=0.20",\n        "transformers==4.37.0",\n    ],\n)',
            (4, 37, 0),
            id="setup",
        ),
        pytest.param("pyproject.toml", '[project]\ndependencies = ["transformers<=4.45.2"]', (4, 45, 2), id="pep621"),
        pytest.param("pyproject.toml", '[tool.poetry.dependencies]\ntransformers = "4.33.2"', (4, 33, 2), id="poetry"),
        pytest.param("pyproject.toml", '[tool.poetry.dependencies]\ntransformers = "^4.33"', None, id="poetry-caret"),
        pytest.param("requirements.txt", "transformers~=4.31", (4, ANY_RELEASE, 0), id="compatible-major"),
        pytest.param("requirements.txt", "transformers==4.31.*", (4, 31, ANY_RELEASE), id="wildcard"),
        pytest.param("requirements.txt", "transformers>=4.32.0,<4.38.0", None, id="exclusive-bound"),
        pytest.param("requirements.txt", "sentence-transformers==2.2.2\ntransformers_stream_generator==0.0.4", None),
        pytest.param("README.md", "pip install transformers==4.31.0", None, id="not-a-dependency-file"),
    ],
)
def test_the_pinned_version(name: str, text: str, version: tuple[int, ...] | None, tmp_path: Path) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    assert pinned_version("transformers", str(tmp_path))[0] == version


@pytest.mark.parametrize(("pin", "findings"), [("transformers==4.31.0", 0), ("transformers==4.29.2", 1)])
def test_a_run_started_in_the_repository(
    pin: str, findings: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mplint .`: the files' paths and the run's root are relative, the pin is read all the same."""
    for name, source in llm_rlhf_tuning(requirements(pin), half_logits=False).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert len(lint_paths(["."], select=["MP001"]).findings) == findings


POLICY_FROM_THE_HUB = """
import argparse

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def sequence_logps(policy, input_ids):
    logits = policy(input_ids=input_ids).logits[:, :-1]
    logps = logits.log_softmax(-1){expect}
    return torch.gather(logps, 2, input_ids[:, 1:, None]).squeeze(-1).sum(-1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name_or_path", default="{checkpoint}")
    args = parser.parse_args()
    policy = AutoModelForCausalLM.from_pretrained(args.model_name_or_path, torch_dtype=torch.bfloat16)
    for input_ids in loader:
        loss = -sequence_logps(policy, input_ids).mean()
        loss.backward()


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("checkpoint", "half_logits"),
    [
        pytest.param("meta-llama/Llama-2-7b-hf", False, id="llama-2"),
        pytest.param("TinyLlama/TinyLlama-1.1B-Chat-v1.0", False, id="tinyllama"),
        pytest.param("Qwen/Qwen2.5-1.5B-Instruct", False, id="qwen2.5"),
        pytest.param("mistralai/Mixtral-8x7B-v0.1", False, id="mixtral"),
        pytest.param("microsoft/phi-2", False, id="phi-2"),
        pytest.param("google/gemma-2b", False, id="gemma"),
        pytest.param("gpt2", True, id="gpt2-never-upcasts"),
        pytest.param("EleutherAI/pythia-1.4b", True, id="gpt-neox-never-upcasts"),
        pytest.param("Qwen/Qwen3-8B", True, id="qwen3-never-upcasts"),
        pytest.param("facebook/opt-1.3b", True, id="opt-never-upcasts"),
        pytest.param("Qwen/Qwen-VL-Chat", True, id="qwen-s-first-generation-remote-code-never-upcasts"),
        pytest.param("llava-hf/llava-1.5-7b-hf", False, id="a-vision-model-s-family-is-not-told"),
        pytest.param("./checkpoints/sft", False, id="a-local-checkpoint-s-family-is-not-told"),
    ],
)
def test_an_auto_model_by_its_checkpoint_name(checkpoint: str, half_logits: bool, tmp_path: Path) -> None:
    """transformers 4.38.2 (pinned) upcasts the logits of Llama, Qwen2, Mixtral, Phi and Gemma, whose
    Hub names say the class `AutoModelForCausalLM` loads; not those of GPT-2, GPT-NeoX, OPT or Qwen3.
    A checkpoint of a family not told may be either: its logits' dtype is unknown there."""
    source = POLICY_FROM_THE_HUB.format(checkpoint=checkpoint, expect="  # expect: MP001" if half_logits else "")
    check_files({**requirements("transformers==4.38.2"), "train.py": source}, "MP001", tmp_path)


@pytest.mark.parametrize(
    ("checkpoint", "half_logits"),
    [
        pytest.param("locuslab/tofu_ft_phi-1.5", False, id="phi-1.5-as-people-write-it"),
        pytest.param("microsoft/phi-1_5", False, id="phi-1_5-as-the-hub-writes-it"),
        pytest.param("./checkpoints/sft", True, id="a-family-not-told"),
    ],
)
def test_a_family_told_by_its_name_beside_docs_naming_one_that_never_upcasts(
    checkpoint: str, half_logits: bool, tmp_path: Path
) -> None:
    """A checkpoint whose name tells its family keeps that family's logits where the repository's
    docs also name a family that never upcasts (OPT, as ReMax's scripts do beside its Llama ones)."""
    source = POLICY_FROM_THE_HUB.format(checkpoint=checkpoint, expect="  # expect: MP001" if half_logits else "")
    readme = "python evaluate.py --model_name_or_path facebook/opt-1.3b\n"
    check_files({**requirements("transformers==4.38.2"), "README.md": readme, "train.py": source}, "MP001", tmp_path)


@pytest.mark.parametrize(
    "dependencies",
    [
        pytest.param(requirements("transformers==4.29.2"), id="before-any-family-upcasts"),
        pytest.param(requirements("transformers==4.46.0"), id="after-the-families-stopped"),
        pytest.param({}, id="unpinned"),
    ],
)
def test_a_checkpoint_of_a_family_not_told_outside_the_window(dependencies: dict[str, str], tmp_path: Path) -> None:
    """Where no common family upcasts, a model of any family returns logits in its weights' dtype."""
    source = POLICY_FROM_THE_HUB.format(checkpoint="./checkpoints/sft", expect="  # expect: MP001")
    check_files({**dependencies, "train.py": source}, "MP001", tmp_path)


def test_the_weights_of_a_model_whose_logits_are_unknown_stay_half(tmp_path: Path) -> None:
    source = POLICY_FROM_THE_HUB.format(checkpoint="./checkpoints/sft", expect="").replace(
        "    for input_ids in loader:",
        "    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)  # expect: MP003\n    for input_ids in loader:",
    )
    check_files({**requirements("transformers==4.38.2"), "train.py": source}, "MP003", tmp_path)


def test_an_auto_llama_under_the_newest_transformers(tmp_path: Path) -> None:
    """Unpinned, the newest transformers runs: a Llama's logits are its weights' dtype there."""
    source = POLICY_FROM_THE_HUB.format(checkpoint="meta-llama/Llama-2-7b-hf", expect="  # expect: MP001")
    check_files({"train.py": source}, "MP001", tmp_path)


UNLEARNING_TRAINER = """
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments


class ForgettingTrainer(Trainer):
    def __init__(self, *args, oracle_logps=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.oracle_logps = oracle_logps

    def compute_loss(self, model, inputs, return_outputs=False{extra}):
        current = F.log_softmax(model(**inputs).logits, dim=-1)
        loss = F.kl_div(current, self.oracle_logps[inputs["idx"]], reduction="batchmean", log_target=True)
        return (loss, None) if return_outputs else loss


model = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-2-7b-chat-hf", torch_dtype=torch.bfloat16)
oracle = AutoModelForCausalLM.from_pretrained("meta-llama/Llama-2-7b-chat-hf", torch_dtype=torch.bfloat16)
oracle_logps = []
with torch.no_grad():
    for batch in loader:
        oracle_logps.append(F.log_softmax(oracle(**batch).logits, dim=-1)){expect}
trainer = ForgettingTrainer(model=model, args=TrainingArguments("out", bf16=True), oracle_logps=oracle_logps)
trainer.train()
"""


@pytest.mark.parametrize(
    ("extra", "half_logits"),
    [
        pytest.param("", False, id="written-for-4.45-or-older"),
        pytest.param(", num_items_in_batch=None", True, id="written-for-4.46-or-newer"),
        pytest.param(", **kwargs", True, id="taking-any-keyword"),
    ],
)
def test_an_unpinned_repository_runs_the_transformers_its_trainer_runs_on(
    extra: str, half_logits: bool, tmp_path: Path
) -> None:
    """Medusa asks for `transformers>=4.34` (the newest), but its `compute_loss(self, model, inputs,
    return_outputs=False)` raises TypeError from 4.46 on (the Trainer passes `num_items_in_batch=`):
    it runs 4.45, where a Llama upcasts its logits. An override taking the new keyword runs the
    newest, which does not."""
    source = UNLEARNING_TRAINER.format(extra=extra, expect="  # expect: MP001" if half_logits else "")
    check_files(
        {"requirements.txt": "git+https://github.com/huggingface/transformers\ntorch\n", "forget.py": source},
        "MP001",
        tmp_path,
    )


VALUE_HEAD_PPO = """
import torch
import torch.nn.functional as F
from trl import AutoModelForCausalLMWithValueHead


def logprobs_from_logits(logits, labels):
    logp = F.log_softmax(logits, dim=2)
    return torch.gather(logp, 2, labels.unsqueeze(2)).squeeze(-1)


def ppo_step(model, ref_model, optimizer, input_ids, old_logprobs, advantages):
    logits, _, values = model(input_ids=input_ids)
    logprobs = logprobs_from_logits(logits[:, :-1, :], input_ids[:, 1:])
    with torch.no_grad():
        ref_logits = ref_model.pretrained_model(input_ids=input_ids).logits
    ref_logprobs = F.log_softmax(ref_logits, dim=-1)  # expect: MP001
    ratio = torch.exp(logprobs - old_logprobs)
    loss = -(ratio * advantages).mean()
    loss.backward()
    optimizer.step()
    return ref_logprobs


def main():
    model = AutoModelForCausalLMWithValueHead.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
    ref_model = AutoModelForCausalLMWithValueHead.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.41e-5)  # expect: MP003
    for input_ids, old_logprobs, advantages in loader:
        ppo_step(model, ref_model, optimizer, input_ids, old_logprobs, advantages)


if __name__ == "__main__":
    main()
"""


def test_trl_value_head_models_upcast_their_logits(tmp_path: Path) -> None:
    """TRL's value-head wrapper returns fp32 logits whatever its model (not the model inside it, run
    alone); its parameters stay bf16 for the optimizer."""
    for code in ("MP001", "MP003"):
        check_files({"ppo.py": VALUE_HEAD_PPO}, code, tmp_path)


def test_a_family_not_told_where_the_repository_names_one_that_never_upcasts(tmp_path: Path) -> None:
    """ReMax's launch scripts train OPT (no upcast under 4.31) beside Llama 2 (upcast): the
    checkpoint option is not agreed on, and the logits of the OPT runs are half."""
    source = POLICY_FROM_THE_HUB.format(checkpoint="./checkpoints/sft", expect="  # expect: MP001")
    files = {
        **requirements("transformers==4.31.0"),
        "train.py": source,
        "scripts/opt/run_opt_1.3b.sh": "deepspeed train.py --model_name_or_path facebook/opt-1.3b\n",
        "scripts/llama2/run_llama2_7b.sh": "deepspeed train.py --model_name_or_path meta-llama/Llama-2-7b-hf\n",
    }
    check_files(files, "MP001", tmp_path)


SIMPO_TRAINER = """
import sys

import torch.nn.functional as F
from transformers import Trainer, TrainingArguments


class SimPOTrainer(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        all_logits = model(input_ids=inputs["input_ids"]).logits
        logps = all_logits.log_softmax(-1){expect}
        return -(logps.gather(-1, inputs["labels"].unsqueeze(-1))).mean()


def main():
    args = TrainingArguments(output_dir="out", bf16=True, deepspeed="zero3.json")
    SimPOTrainer(model=sys.argv[1], args=args).train()


if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize(
    ("dependencies", "half_logits"),
    [
        pytest.param({"environment.yml": SIMPO_ENVIRONMENT}, False, id="4.44-where-the-common-families-upcast"),
        pytest.param({}, True, id="unpinned"),
    ],
)
def test_a_trainer_given_a_model_by_name_on_a_deepspeed_engine(
    dependencies: dict[str, str], half_logits: bool, tmp_path: Path
) -> None:
    """SimPO: the Trainer loads the model from a name it is given; the engine runs it in bf16 and its
    logits are those of a family not told."""
    source = SIMPO_TRAINER.format(expect="  # expect: MP001" if half_logits else "")
    check_files({**dependencies, "scripts/run_simpo.py": source}, "MP001", tmp_path)


# RLAIF-V (llava/model/language_model/llava_llama.py, muffin/train/train_llava15.py): a project's
# LLaVA class derives from transformers' LlamaForCausalLM and its forward hands the merged image and
# text embeddings to `super().forward(...)`, which computes (and, in the pinned version, upcasts) the logits.
LLAVA_LLAMA = """
import torch
import torch.nn as nn
from transformers import LlamaConfig, LlamaForCausalLM


class LlavaLlamaForCausalLM(LlamaForCausalLM):
    config_class = LlamaConfig

    def __init__(self, config):
        super(LlamaForCausalLM, self).__init__(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def prepare_inputs_labels_for_multimodal(self, input_ids, labels, images):
        return input_ids, labels

    def forward(self, input_ids=None, attention_mask=None, labels=None, images=None, return_dict=None):
        input_ids, labels = self.prepare_inputs_labels_for_multimodal(input_ids, labels, images)
{forward_tail}
"""

RETURNS_SUPER_FORWARD = """\
        return super().forward(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, return_dict=return_dict
        )"""

COMPUTES_ITS_LOGITS = """\
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask)
        logits = self.lm_head(outputs[0])
        return {"logits": logits}"""

DPO_TRAIN = """
import copy

import torch

from llava.model.llava_llama import LlavaLlamaForCausalLM


def get_batch_logps(logits, labels):
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    per_token_logps = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2){expect}
    return per_token_logps.sum(-1)


def train(model, loader):
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], images=batch["images"])["logits"]
        get_batch_logps(logits, batch["labels"]).mean().backward()


def reference_logps(model, loader):
    logps = []
    with torch.inference_mode():
        for batch in loader:
            output = model.forward(input_ids=batch["input_ids"], images=batch["images"])
            logps.append(get_batch_logps(output.logits, batch["labels"]))
    return logps


def main(loader, bf16=True):
    dtype = torch.bfloat16 if bf16 else None
    model = LlavaLlamaForCausalLM.from_pretrained("liuhaotian/llava-v1.5-7b", torch_dtype=dtype)
    reference = reference_logps(copy.deepcopy(model).to(dtype=torch.bfloat16, device="cuda"), loader)
    train(model, loader)


if __name__ == "__main__":
    main(loader=[])
"""


@pytest.mark.parametrize(
    ("pin", "forward_tail", "half_logits"),
    [
        pytest.param("transformers==4.35.0", RETURNS_SUPER_FORWARD, False, id="super-forward-upcasts-in-4.35"),
        pytest.param("transformers==4.46.0", RETURNS_SUPER_FORWARD, True, id="super-forward-in-4.46-does-not"),
        pytest.param("transformers", RETURNS_SUPER_FORWARD, True, id="super-forward-unpinned-does-not"),
        pytest.param("transformers==4.35.0", COMPUTES_ITS_LOGITS, True, id="a-forward-of-its-own-never-upcasts"),
    ],
)
def test_a_project_subclass_of_a_transformers_causal_lm(
    pin: str, forward_tail: str, half_logits: bool, tmp_path: Path
) -> None:
    """A project's class over `LlamaForCausalLM` gives fp32 logits where its forward returns
    `super().forward(...)` under a transformers version whose Llama upcasts them, and its weights'
    dtype where it computes its logits itself (older LLaVA forwards run the head themselves); a
    `copy.deepcopy` of it (the DPO reference model, cast to bf16) is of the same class."""
    files = {
        "pyproject.toml": f'[project]\nname = "rlaif-v"\ndependencies = ["torch==2.1.0", "{pin}"]\n',
        "llava/__init__.py": "",
        "llava/model/__init__.py": "",
        "llava/model/llava_llama.py": LLAVA_LLAMA.format(forward_tail=forward_tail),
        "train.py": DPO_TRAIN.format(expect="  # expect: MP001" if half_logits else ""),
    }
    check_files(files, "MP001", tmp_path)


def test_a_deep_copy_of_a_project_subclass_is_of_that_class(tmp_path: Path) -> None:
    """The reference model alone reaches the log-softmax: a `copy.deepcopy` of the policy cast to
    bf16, whose class computes bf16 logits under transformers 4.46."""
    train = DPO_TRAIN.format(expect="  # expect: MP001").replace(
        'get_batch_logps(logits, batch["labels"]).mean().backward()', "logits.float().mean().backward()"
    )
    files = {
        "pyproject.toml": '[project]\nname = "rlaif-v"\ndependencies = ["transformers==4.46.0"]\n',
        "llava/__init__.py": "",
        "llava/model/__init__.py": "",
        "llava/model/llava_llama.py": LLAVA_LLAMA.format(forward_tail=RETURNS_SUPER_FORWARD),
        "train.py": train,
    }
    check_files(files, "MP001", tmp_path)


@pytest.mark.parametrize(
    ("name", "is_model"),
    [
        ("transformers.LlamaForCausalLM", True),
        ("transformers.GPT2LMHeadModel", True),
        ("transformers.models.llama.modeling_llama.LlamaModel", True),
        ("transformers.DataCollatorForLanguageModeling", False),
        ("transformers.Trainer", False),
        ("peft.PeftModelForCausalLM", False),
    ],
)
def test_a_transformers_model_class_by_its_name(name: str, is_model: bool) -> None:
    """The bases that make a project's class a transformers model (a module, loaded by from_pretrained)."""
    assert is_transformers_model(name) is is_model


# RLAIF-V muffin/eval/muffin_inference_logp.py: a helper that casts the model it is handed (of a class
# the helper cannot see) to bf16 and takes log-probs of its logits.
REFERENCE_LOGPS = """
import torch


def get_batch_logps(logits, labels):
    return torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2){expect}


def inference_logp(model, dataloader):
    model = model.to(dtype=torch.bfloat16, device="cuda")
    with torch.inference_mode():
        return [get_batch_logps(model(batch["input_ids"]).logits, batch["labels"]) for batch in dataloader]
"""


@pytest.mark.parametrize(
    ("dependencies", "half_logits"),
    [
        pytest.param(requirements("transformers==4.35.0"), False, id="pinned-where-the-common-families-upcast"),
        pytest.param(requirements("transformers==4.46.0"), True, id="pinned-after-they-stopped"),
        pytest.param({}, True, id="unpinned"),
    ],
)
def test_a_model_of_unknown_class_cast_to_bf16(dependencies: dict[str, str], half_logits: bool, tmp_path: Path) -> None:
    """A model handed in, of no class the analysis knows, cast to bf16: under a transformers pin in
    which Llama, Mistral, Qwen2, Gemma and Phi upcast their logits it may be one of them, and its
    logits' dtype is unknown (as an Auto model's of a family not told); elsewhere they are bf16."""
    source = REFERENCE_LOGPS.format(expect="  # expect: MP001" if half_logits else "")
    check_files({**dependencies, "muffin/eval/inference_logp.py": source}, "MP001", tmp_path)


# Rollout log-probs from generate()'s scores, as summarize_from_feedback_details (vwxyzjn) takes
# them for the PPO ratio's old log-probs.
GENERATE_ROLLOUT = """
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, GenerationConfig


def generate(lm_backbone, queries, generation_config):
    output = lm_backbone.generate(
        input_ids=queries,
        generation_config=generation_config,{returned}
        output_scores=True,
    )
    logits = torch.stack(output.scores, 1)
    return output.sequences, logits


def rollout(queries):
    policy = AutoModelForCausalLM.from_pretrained("EleutherAI/pythia-1b-deduped", torch_dtype=torch.bfloat16)
    responses, logits = generate(policy, queries, GenerationConfig(max_new_tokens=53, do_sample=True))
    all_logprob = F.log_softmax(logits, dim=-1){expect}
    return torch.gather(all_logprob, 2, responses.unsqueeze(-1)).squeeze(-1)
"""


@pytest.mark.parametrize(
    ("pin", "returned", "bug"),
    [
        pytest.param("transformers==4.33.2", True, True, id="scores-in-the-logits-dtype-before-4.45"),
        pytest.param("transformers==4.44.2", True, True, id="4.44-keeps-them"),
        pytest.param("transformers==4.45.0", True, False, id="fp32-scores-from-4.45"),
        pytest.param("transformers", True, False, id="unpinned-runs-the-newest"),
        pytest.param("transformers==4.33.2", False, False, id="token-ids-without-return-dict"),
    ],
)
def test_generate_scores_follow_the_pinned_transformers(pin: str, returned: bool, bug: bool, tmp_path: Path) -> None:
    """`generate(..., return_dict_in_generate=True, output_scores=True).scores` are each step's logits
    in the head's dtype up to transformers 4.44 and fp32 from 4.45 (`_sample` upcasts them)."""
    source = GENERATE_ROLLOUT.format(
        returned="\n        return_dict_in_generate=True," if returned else "",
        expect="  # expect: MP001" if bug else "",
    )
    check_files({"requirements.txt": pin + "\n", "ppo.py": source}, "MP001", tmp_path)


# align-anything's `AnyModel`: an auto class of the project whose `from_pretrained` picks the model
# class by the checkpoint's `model_type` and loads it with the dtype it was handed.
ANY_MODEL = """
import torch
import torch.nn.functional as F
from transformers import AutoConfig
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _get_model_class


class AnyModel(_BaseAutoModelClass):
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        config = AutoConfig.from_pretrained(pretrained_model_name_or_path)
        model_class = _get_model_class(config, cls._model_mapping)
        return model_class.from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)


def load_pretrained_models(model_name_or_path, dtype=torch.bfloat16):
    return AnyModel.from_pretrained(model_name_or_path, torch_dtype=dtype)


def main():
    policy = load_pretrained_models("Qwen/Qwen2.5-1.5B")
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)  # expect: MP003
    for input_ids in loader:
        logits = policy(input_ids).logits
        log_probs = F.log_softmax(logits, dim=-1){expect}
"""


@pytest.mark.parametrize(
    ("dependencies", "half_logits"),
    [
        pytest.param(requirements("transformers>=4.50"), True, id="no-family-upcasts"),
        pytest.param(requirements("transformers==4.38.2"), False, id="the-common-families-upcast"),
    ],
)
def test_a_model_class_picked_at_run_time_loads_in_the_dtype_it_is_handed(
    dependencies: dict[str, str], half_logits: bool, tmp_path: Path
) -> None:
    source = ANY_MODEL.format(expect="  # expect: MP001" if half_logits else "")
    check_files({**dependencies, "train.py": source}, "MP001", tmp_path)
    check_files({**dependencies, "train.py": source}, "MP003", tmp_path)


# A vision-language model's logits are its language model's (LLaVA wraps a Llama): a family not told.
@pytest.mark.parametrize(
    ("pin", "half_logits"),
    [("transformers==4.43.2", False), ("transformers==4.46.0", True)],
)
def test_a_vision_language_auto_model(pin: str, half_logits: bool, tmp_path: Path) -> None:
    source = POLICY_FROM_THE_HUB.format(
        checkpoint="./checkpoints/vlm", expect="  # expect: MP001" if half_logits else ""
    )
    source = source.replace("AutoModelForCausalLM", "AutoModelForVision2Seq")
    check_files({**requirements(pin), "train.py": source}, "MP001", tmp_path)


# MambaInLlama's student: a wrapper whose forward runs a model it was handed (a Transformers model
# whose layers a loader replaced), the whole cast to bf16: what the forward returns is not followed.
WRAPPED = """
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


class HybridWrapper(nn.Module):
    def __init__(self, transformer_model, dtype):
        super().__init__()
        self.model = transformer_model.to(dtype)

    def forward(self, input_ids, **kwargs):
        return self.model(input_ids, **kwargs)


student = HybridWrapper(load_with_mamba_layers("meta-llama/Llama-3.2-3B"), torch.bfloat16).to(torch.bfloat16)
for input_ids, targets in loader:
    logits = student(input_ids=input_ids).logits
    loss = F.kl_div(F.log_softmax(logits, dim=-1), targets, reduction="batchmean"){expect}
    loss.backward()
"""


@pytest.mark.parametrize(
    ("pin", "half_logits"),
    [("transformers==4.43.1", False), ("transformers==4.46.0", True)],
)
def test_a_wrapper_whose_forward_is_not_followed(pin: str, half_logits: bool, tmp_path: Path) -> None:
    source = WRAPPED.format(expect="  # expect: MP001" if half_logits else "")
    check_files({**requirements(pin), "train.py": source}, "MP001", tmp_path)


@pytest.mark.parametrize(("pin", "half_logits"), [("transformers==4.38.2", False), ("transformers==4.46.0", True)])
def test_a_model_of_another_class_on_one_path_keeps_its_logits_unknown(
    pin: str, half_logits: bool, tmp_path: Path
) -> None:
    """distillm-2's trainer: a checkpoint of a family not told on one path, another model on the other,
    the one it ends up with cast to bf16: its logits are as unknown as the checkpoint's (not its
    weights'), where the common families upcast theirs."""
    source = POLICY_FROM_THE_HUB.format(
        checkpoint="./checkpoints/sft", expect="  # expect: MP001" if half_logits else ""
    )
    source = source.replace(
        "    policy = AutoModelForCausalLM.from_pretrained(args.model_name_or_path, torch_dtype=torch.bfloat16)\n",
        "    policy = AutoModelForCausalLM.from_pretrained(args.model_name_or_path)\n"
        "    if args.tiny:\n        policy = TinyLM()\n    policy = policy.to(torch.bfloat16)\n",
    )
    source = source.replace(
        "def sequence_logps",
        "class TinyLM(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.head = torch.nn.Linear(64, 100)\n\n    def forward(self, input_ids):\n"
        "        return self.head(input_ids)\n\n\ndef sequence_logps",
    )
    assert "TinyLM()" in source and "class TinyLM" in source
    check_files({**requirements(pin), "train.py": source}, "MP001", tmp_path)
