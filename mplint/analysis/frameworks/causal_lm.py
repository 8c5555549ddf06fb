"""Transformers' causal language models whose own forward returns fp32 logits whatever the dtype of
their weights (`logits = logits.float()` after the head): by architecture, and by the version of
transformers the linted repository pins (`pins`). A model loaded half (`torch_dtype=torch.float16`),
cast or run by a half DeepSpeed engine keeps its half parameters, but its logits are fp32.

Read from the wheels of transformers 4.12.0, 4.25.1 to 4.57.0 (each minor's .0, and 4.30.2, 4.38.1,
4.38.2, 4.44.2, 4.45.2, 4.47.1), 5.0.0 and 5.25.0 (`pip download --no-deps transformers==X`): the
`forward` of each `*ForCausalLM` class in `transformers/models/<name>/modeling_<name>.py`.
- `llama/modeling_llama.py` `LlamaForCausalLM.forward`: no upcast in 4.28.0 to 4.30.2 (alpaca_farm
  pins 4.29.2); `logits = logits.float()` after the head from 4.31.0 to 4.44.2; 4.45.x upcasts in
  `self.lm_head(hidden_states[:, -num_logits_to_keep:, :]).float()` (with a warning that 4.46 stops),
  except under `pretraining_tp > 1` (1 in Llama's configs); from 4.46.0 the logits keep the head's
  dtype and `self.loss_function` upcasts them for the loss only.
- Mistral (added in 4.34.0), Mixtral (4.36.0), Phi (4.36.0), Qwen2 (4.37.0), Cohere and Starcoder2
  (4.39.0), Qwen2MoE, OLMo, Jamba and RecurrentGemma (4.40.0), Phi3 and JetMoE (4.41.0), Gemma2
  (4.42.0), Nemotron (4.44.0), Granite and GraniteMoE (4.45.0): `logits = logits.float()` from their
  first version to 4.45.x, none from 4.46.0 on. Gemma (added in 4.38.0) upcasts from 4.38.2 (not in
  4.38.0 or 4.38.1). Some upcast only when `labels` are given from 4.46.0 (Mistral and Granite to
  4.47.x, JetMoE to 4.53.x, RecurrentGemma): not modelled, their logits are the weights'.
- `gptj/modeling_gptj.py` and `codegen/modeling_codegen.py`: `lm_logits = self.lm_head(hidden_states)
  .to(torch.float32)` in every 4.x read (4.12.0 to 4.57.0), gone in 5.0.0.
- Mamba (4.39.0), Mamba2 (4.44.0), FalconMamba and Mllama (4.45.0): `self.lm_head(...).float()` in
  every version read since, 5.25.0 included.
- Never upcast in any version read: GPT-2 (`GPT2LMHeadModel`), OPT, GPT-NeoX, Bloom, Falcon,
  GPT-BigCode, StableLM, Qwen3, Gemma3, Llama4, DeepSeek-V2/V3 (GPT-Neo only with `labels`).

`AutoModelForCausalLM.from_pretrained("meta-llama/Llama-2-7b-hf")` loads the class its checkpoint's
config names; with the checkpoint written out (a literal, a default, a launch option) the class is
told from the Hub name's model family (`ARCHITECTURES`). A checkpoint of a family not told gives
logits of unknown dtype under a pin where the common families upcast (4.31 to 4.45: SimPO's
environment.yml pins 4.44.2 and its recipes train Llama 3, Mistral and Gemma 2 through a config
field), and the weights' dtype elsewhere.

TRL's value-head wrappers (`AutoModelForCausalLMWithValueHead`, `AutoModelForSeq2SeqLMWithValueHead`,
`trl/models/modeling_value_head.py` in trl 0.4.0, 0.4.7, 0.7.4, 0.11.4, 0.12.0 and 0.19.0,
`trl/experimental/ppo/` since) upcast in their own forward whatever the model inside: `if
lm_logits.dtype != torch.float32: lm_logits = lm_logits.float()` ("force upcast in fp32 if logits are
in half-precision"), so the `(lm_logits, loss, value)` they return starts with fp32 logits.

`generate(..., return_dict_in_generate=True, output_scores=True)` (`generation/utils.py`): each step's
scores are the logits of the last position in the head's dtype up to 4.44.2 (`outputs.logits[:, -1,
:].clone()`), in fp32 from 4.45.0 (`.float()`; `.to(copy=True, dtype=torch.float32)` in 4.57.0). RL
code takes rollout log-probs from them (`torch.stack(output.scores, 1)`).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mplint.analysis.configuration import NAMESPACE
from mplint.analysis.frameworks.accelerate_launch import LAUNCH_SUFFIXES, parsed_once, repository_texts
from mplint.analysis.frameworks.pins import ANY_RELEASE, Version, pinned_version
from mplint.analysis.project import ModuleIndex
from mplint.analysis.torch_api import last_part
from mplint.analysis.values import Kind, OwnLogits, Precision, UnknownLogits, Value
from mplint.repository import repository_root

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# First version that upcasts, first that no longer does (None: as old or as new as the class).
_TO_4_46 = ((4, 46, 0),)
UPCASTS: dict[str, tuple[Version | None, Version | None]] = {
    "LlamaForCausalLM": ((4, 31, 0), *_TO_4_46),
    **{
        f"{name}ForCausalLM": (None, *_TO_4_46)
        for name in (
            "Mistral",
            "Mixtral",
            "Phi",
            "Qwen2",
            "Cohere",
            "Starcoder2",
            "Qwen2Moe",
            "Olmo",
            "Jamba",
            "RecurrentGemma",
            "Phi3",
            "JetMoe",
            "Gemma2",
            "Nemotron",
            "Granite",
            "GraniteMoe",
        )
    },
    "GemmaForCausalLM": ((4, 38, 2), *_TO_4_46),
    "GPTJForCausalLM": (None, (5, 0, 0)),
    "CodeGenForCausalLM": (None, (5, 0, 0)),
    **{f"{name}ForCausalLM": (None, None) for name in ("Mamba", "Mamba2", "FalconMamba", "Mllama")},
}

# The Auto class that loads a causal LM by its checkpoint's architecture, and its loader.
AUTO_CAUSAL_LM = "AutoModelForCausalLM"
AUTO_LOAD = f"transformers.{AUTO_CAUSAL_LM}.from_pretrained"
# Hub names by model family (matched in the name's last part, lowercased; first match wins): the class
# each family's published configs declare in `architectures` (`meta-llama/Llama-2-7b-hf`,
# `meta-llama/Meta-Llama-3-8B`, `TinyLlama/TinyLlama-1.1B-Chat-v1.0`, `codellama/CodeLlama-7b-hf`,
# `lmsys/vicuna-7b-v1.5`: Llama; `Qwen/Qwen1.5-7B`, `Qwen/Qwen2.5-1.5B-Instruct`,
# `deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B`: Qwen2; `google/gemma-2b`: Gemma, `google/gemma-2-9b`:
# Gemma2; `microsoft/phi-2`: Phi; `microsoft/Phi-3-mini-4k-instruct`, `microsoft/phi-4`: Phi3; ...).
# A family of remote code counts by its own modeling file (`auto_map`).
# A vision or audio model is not its language model: its family is not told ("").
ARCHITECTURES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), model_class)
    for pattern, model_class in (
        # Qwen's first generation (`Qwen/Qwen-7B`, `Qwen/Qwen-VL-Chat`): remote code whose
        # `QWenLMHeadModel` returns the head's output as it is.
        (r"^qwen-", "QWenLMHeadModel"),
        (r"vision|-vl\b|llava|audio|omni", ""),
        (r"llama-?4", "Llama4ForCausalLM"),
        (r"qwen3", "Qwen3ForCausalLM"),
        (r"gemma-?3-", "Gemma3ForCausalLM"),
        (r"falcon-mamba", "FalconMambaForCausalLM"),
        (r"mamba-?2", "Mamba2ForCausalLM"),
        (r"mamba", "MambaForCausalLM"),
        (r"mixtral", "MixtralForCausalLM"),
        (r"mistral", "MistralForCausalLM"),
        (r"qwen(1\.5|2(\.5)?)-moe", "Qwen2MoeForCausalLM"),
        (r"qwen(1\.5|2(\.5)?)-|distill-qwen", "Qwen2ForCausalLM"),
        (r"gemma-?2-", "Gemma2ForCausalLM"),  # not `gemma-2b`, a Gemma
        (r"gemma", "GemmaForCausalLM"),
        (r"phi-?[34]", "Phi3ForCausalLM"),
        (r"phi-(1|1[._]5|2)$", "PhiForCausalLM"),
        (r"llama|vicuna", "LlamaForCausalLM"),
        (r"gpt-?j", "GPTJForCausalLM"),
        (r"codegen-", "CodeGenForCausalLM"),
        (r"^(distil)?gpt2", "GPT2LMHeadModel"),
        (r"^opt-", "OPTForCausalLM"),
        (r"pythia|gpt-neox", "GPTNeoXForCausalLM"),
        (r"bloom", "BloomForCausalLM"),
        (r"falcon", "FalconForCausalLM"),
    )
)
# TRL's wrappers that upcast their logits in every version that has them.
VALUE_HEADS = frozenset({"AutoModelForCausalLMWithValueHead", "AutoModelForSeq2SeqLMWithValueHead"})
# Auto classes of vision-language models, whose forward returns the logits of the causal LM they
# wrap (`LlavaForConditionalGeneration.forward`: `logits = outputs[0]` of its `language_model`, a
# `LlamaForCausalLM` that upcasts up to 4.45; read in transformers 4.43.2 `llava/modeling_llava.py`).
AUTO_VISION_TO_TEXT = frozenset({"AutoModelForVision2Seq", "AutoModelForImageTextToText"})


@dataclass(frozen=True)
class Fp32Logits(OwnLogits):
    """The payload of a model whose forward upcasts its logits: of a Transformers class that does in
    the version the repository pins (None: the newest), or of a TRL value-head wrapper."""

    model_class: str
    version: Version | None


# The family whose window stands for the common ones' (Mistral, Qwen2, Gemma and Phi upcast from
# their first version to 4.45 too).
COMMON_FAMILY = "LlamaForCausalLM"


def is_value_head(function: str) -> bool:
    """TRL's `AutoModelForCausalLMWithValueHead.from_pretrained` (and the seq2seq one)."""
    return function.startswith("trl.") and last_part(function.rpartition(".")[0]) in VALUE_HEADS


def loaded(self: Interpreter, function: str, path: str, model: Value, checkpoint: Value) -> Value:
    """`model` as `function` (`transformers.LlamaForCausalLM.from_pretrained`) loads it from
    `checkpoint` in the file at `path`: a model whose outputs are fp32 when its class upcasts its
    logits in the transformers version the file's repository pins (the files read are dependencies),
    or when TRL wraps it in a value head."""
    if model.kind is not Kind.MODULE:
        return model
    model_class = last_part(function.rpartition(".")[0])
    if is_value_head(function):
        return model.with_(payload=Fp32Logits(model_class, None))
    if not function.startswith("transformers."):
        return model
    if model_class == AUTO_CAUSAL_LM:
        model_class = architecture(checkpoint.const) if isinstance(checkpoint.const, str) else ""
    elif model_class in AUTO_VISION_TO_TEXT:
        model_class = ""  # its logits are those of the language model it wraps, a family not told
    elif model_class not in UPCASTS:
        return model  # a class of its own: `OPTForCausalLM` never upcasts
    version = pinned_transformers(self, path)
    if not model_class:
        # Of a family not told, where the common ones upcast (Llama, Mistral, Qwen2, Gemma, Phi from
        # 4.31 to 4.45): its logits' dtype is not known, unless the repository's commands and docs
        # name a checkpoint of a family that never upcasts (ReMax's OPT scripts beside its Llama 2 ones).
        if not upcasts(COMMON_FAMILY, version) or _names_a_half_family(self, path):
            return model
        return model.with_(payload=UnknownLogits())
    if model_class in UPCASTS and upcasts(model_class, version):
        return model.with_(payload=Fp32Logits(model_class, version))
    return model


def inherited_output(self: Interpreter, model_class: str, path: str) -> Value | None:
    """What `super().forward(...)` gives in the file at `path`, in a class deriving from the
    transformers class `model_class`: fp32 logits where that class upcasts them in the version the
    repository pins; None (the weights' dtype) where it does not."""
    name = last_part(model_class)
    if name not in UPCASTS or not upcasts(name, pinned_transformers(self, path)):
        return None
    return Value(Kind.TENSOR, Precision.FP32)


def common_families_upcast(self: Interpreter, path: str) -> bool:
    """Whether the transformers the repository of `path` pins upcasts the logits of the common
    families (Llama, Mistral, Qwen2, Gemma, Phi: 4.31 to 4.45): a model of unknown class run there
    may be one of them, and the dtype of its logits is then unknown (RLAIF-V pins 4.35.0 and casts
    its reference LLaVA, a parameter, to bf16 in a helper)."""
    return upcasts(COMMON_FAMILY, pinned_transformers(self, path))


# `generate()` keeps each step's logits in fp32 from this version: `_sample` takes
# `outputs.logits.clone()[:, -1, :].float()` in 4.45.0 and 4.45.2 (`.to(copy=True, dtype=torch.float32)`
# in 4.57.0), and `outputs.logits[:, -1, :].clone()` (the head's dtype) in 4.38.2 to 4.44.2.
GENERATE_UPCASTS_SINCE: Version = (4, 45, 0)


def generated(self: Interpreter, logits: Value, kwargs: dict[str, Value], path: str) -> Value:
    """`model.generate(..., return_dict_in_generate=True, output_scores=True)`: a record whose `scores`
    (and, where asked, raw `logits`), one tensor per step, are in the dtype of the model's logits
    (`logits`) under a pinned transformers before 4.45, in fp32 from 4.45; without
    `return_dict_in_generate` generate gives the token ids (nothing of precision)."""
    if kwargs.get("return_dict_in_generate", Value(Kind.ANY)).const is not True:
        return Value(Kind.ANY)
    version = pinned_transformers(self, path)
    upcast = version is None or version >= GENERATE_UPCASTS_SINCE
    steps = Value(Kind.TENSOR, Precision.FP32) if upcast else logits.with_(kind=Kind.TENSOR)
    return Value(Kind.DICT, op=NAMESPACE, items=(("logits", steps), ("scores", steps)))


def pinned_transformers(self: Interpreter, path: str) -> Version | None:
    """The transformers version the repository of `path` pins (None: the newest), or where it pins
    none, 4.45 when its code only runs there (`_LOSS_WITHOUT_ITEMS`); the files read are dependencies."""
    root = repository_root(path, self.index.root)
    version, read = pinned_version("transformers", root)
    self.data_files.update(read)
    if version is None:
        overrides = _old_loss_overrides(self.index, root)
        if overrides:
            self.data_files.update(overrides)
            return LAST_WITHOUT_ITEMS_IN_BATCH
    return version


# From transformers 4.46.0 `Trainer.training_step` calls `self.compute_loss(model, inputs,
# num_items_in_batch=num_items_in_batch)` (trainer.py; 4.45.2 calls `self.compute_loss(model, inputs)`),
# and every release since does: an override written `def compute_loss(self, model, inputs,
# return_outputs=False)` raises TypeError there (transformers#35838, #36331; TOFU's unlearning
# Trainer). A repository holding one and pinning no version runs 4.45 at most.
LAST_WITHOUT_ITEMS_IN_BATCH: Version = (4, 45, ANY_RELEASE)
_LOSS_WITHOUT_ITEMS = re.compile(
    r"def\s+compute_loss\s*\(\s*self\s*,\s*model\s*,\s*inputs\s*(?:,\s*return_outputs\s*=\s*False\s*)?,?\s*\)"
)
# Per run (its module index) and repository root: the files with such an override.
_OLD_OVERRIDES: weakref.WeakKeyDictionary[ModuleIndex, dict[str, tuple[str, ...]]] = weakref.WeakKeyDictionary()


def _old_loss_overrides(index: ModuleIndex, root: str) -> tuple[str, ...]:
    """The files of the run in the repository at `root` that override the Trainer's `compute_loss`
    without its `num_items_in_batch` (nor `**kwargs`)."""
    known = _OLD_OVERRIDES.setdefault(index, {})
    if root not in known:
        texts = index.texts_under(root)
        known[root] = tuple(path for path, text in texts if "compute_loss" in text and _LOSS_WITHOUT_ITEMS.search(text))
    return known[root]


# Words of a launch file or a doc that may name a checkpoint (`facebook/opt-1.3b`, `${BASE}/opt-1.3b_sft`).
_WORDS = re.compile(r"[\w.-]+")
# Per launch file: whether it names a checkpoint of a family that never upcasts its logits.
_NAMES_HALF_FAMILY: dict[str, tuple[str, bool]] = {}


def _names_a_half_family(self: Interpreter, path: str) -> bool:
    """Whether a launch file or doc of the repository of `path` names a checkpoint whose family never
    upcasts its logits (GPT-2, OPT, GPT-NeoX, Bloom, Falcon; `ARCHITECTURES`); the files read are
    dependencies."""
    found = False
    for name, text in repository_texts(repository_root(path, self.index.root)):
        if name.endswith(LAUNCH_SUFFIXES):
            self.data_files.add(name)
            found = found or parsed_once(_NAMES_HALF_FAMILY, name, text, _half_family_named)
    return found


def _half_family_named(text: str) -> bool:
    return any(
        (model_class := architecture(word)) and model_class not in UPCASTS for word in _WORDS.findall(text.lower())
    )


def architecture(checkpoint: str) -> str:
    """The causal LM class a Hub checkpoint of a known family loads (`ARCHITECTURES`), else ""."""
    name = checkpoint.rstrip("/").rpartition("/")[2].lower()
    return next((model_class for pattern, model_class in ARCHITECTURES if pattern.search(name)), "")


def upcasts(model_class: str, version: Version | None) -> bool:
    """Whether the forward of `model_class` upcasts its logits in `version` (None: the newest)."""
    since, until = UPCASTS[model_class]
    if version is None:
        return until is None
    return (since is None or since <= version) and (until is None or version < until)


def output(module: Value, result: Value) -> Value:
    """What calling `module` gives back, from what a module of its dtype computes (`result`)."""
    if isinstance(module.payload, Fp32Logits):
        return result.with_(precision=Precision.FP32, origin=None)
    if isinstance(module.payload, UnknownLogits):
        return result.with_(precision=Precision.UNKNOWN, origin=None)
    return result
