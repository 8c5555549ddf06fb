"""PEFT and bitsandbytes, as far as precision goes: what LoRA wrapping and k-bit preparation do to a
model's trainable parameters and to its outputs.

Read from peft 0.21.2 and bitsandbytes 0.50.2 (`pip download peft==0.21.2 bitsandbytes==0.50.2`), and
transformers 5.24.0:
- peft `mapping_func.py` `get_peft_model(model, peft_config, ..., autocast_adapter_dtype=True)`;
  `tuners/tuners_utils.py` `_move_adapter_to_device_of_base_layer` creates each adapter in the base
  layer's floating dtype, then `cast_adapter_dtype` upcasts float16/bfloat16 adapters to float32
  unless `autocast_adapter_dtype=False`. The base weights are frozen and keep their dtype; the
  trainable ones are the fp32 adapters (or half ones, with `autocast_adapter_dtype=False` over a
  half base). Older versions differ (`pip download peft==0.6.2 peft==0.7.0`): from 0.7.0 (the
  base-layer refactor) to 0.11.1, `tuners/lora/layer.py` `LoraLayer.update_layer` ends in
  `self.to(weight.device, dtype=weight.dtype)` with the base layer's weight, so the adapters are in
  the base's dtype (openvla pins peft==0.11.1); the upcast arrived in 0.12.0 (huggingface/peft#1706,
  merged after 0.11.1). Up to 0.6.2 the LoRA `Linear` has no weight of its own when `update_layer`
  runs (the base's is assigned after, and `_replace_module` moves the module by device only): the
  adapters stay in the default dtype, fp32 (LLM-RLHF-Tuning pins peft==0.4.0).
  `tuners/lora/layer.py` `Linear.forward`: `result = result.to(torch_result_dtype)`, the adapters'
  sum comes back in the base layer's output dtype: the model's outputs are the base's.
- peft `utils/other.py` `prepare_model_for_kbit_training`: freezes every parameter, then (for
  bitsandbytes and plain models; not GPTQ, AQLM, EETQ, HQQ or torchao ones) casts every float16 or
  bfloat16 parameter that is no `Params4bit` to float32, in place: norms, embeddings and the head
  become fp32, so the model's outputs are fp32.
- bitsandbytes `nn/modules.py` `Linear4bit.forward`: the input is cast to `compute_dtype`
  (`bnb_4bit_compute_dtype`) for the matmul and the result back to the input's dtype:
  `BitsAndBytesConfig(bnb_4bit_compute_dtype=...)` does not make the outputs that dtype; they are in
  the dtype of the unquantized modules, i.e. `from_pretrained(..., dtype=...)`'s (unknown without
  it: transformers 5 loads "auto" there, 4.x forced float16 for bitsandbytes).
- peft `utils/other.py` `ModulesToSaveWrapper` (an `AuxiliaryTrainingWrapper`, no `BaseTunerLayer`):
  each module of the config's `modules_to_save` gets a trainable deep copy, in the module's dtype;
  `cast_adapter_dtype` casts the tuner layers' adapters only, so the copies of a half model's modules
  stay half. `peft_model.py`'s `PeftModelForSequenceClassification` (and the token-classification and
  question-answering ones) add the head (`classifier`, `score`) to `modules_to_save` (read in peft
  0.17.0): a LoRA reward model over a bf16 base trains a bf16 head.
- peft `tuners/tuners_utils.py` `BaseTuner._unload_and_optionally_merge` (`merge_and_unload`,
  `unload`): replaces each tuner layer by its base layer (merging the delta into the base weight in
  its dtype) and returns `self.model`, the base model.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.frameworks.pins import Version, pinned_version
from mplint.analysis.scopes import Context
from mplint.analysis.values import HALF_TRAINABLE, UNKNOWN, Kind, Precision, Value
from mplint.repository import repository_root

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

WRAPPERS = frozenset({"get_peft_model", "PeftModel", "PeftModelForCausalLM", "PeftModelForSeq2SeqLM"})
KBIT_PREPARATION = "prepare_model_for_kbit_training"
# `Value.op` of a PEFT model: its trainable parameters are fp32 adapters, or adapters in the base's
# dtype, or fp32 adapters beside copies of modules in the base's dtype (`modules_to_save`).
FP32_ADAPTERS = "peft: fp32 adapters"
BASE_DTYPE_ADAPTERS = "peft: adapters in the base dtype"
SAVED_MODULES = "peft: fp32 adapters and modules to save in the base dtype"
OPS = frozenset({FP32_ADAPTERS, BASE_DTYPE_ADAPTERS, SAVED_MODULES})
# What `peft_model.merge_and_unload()` and `unload()` give back: the base model, its layers with the
# adapters' weights merged in (or dropped) in their own dtype, no adapter left.
UNWRAPPERS = frozenset({"merge_and_unload", "unload"})
# `Value.op` of a PEFT config that trains copies of whole modules: `modules_to_save=[...]` given, or a
# task type whose model adds its head to them.
SAVING_CONFIG = "peft: config with modules to save"
_HEAD_TASKS = frozenset({"SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS"})
# The item of a PEFT model holding its adapters' parameters, once a loop cast them (no attribute has a space).
ADAPTERS = "peft adapters"


def is_peft(function: str) -> bool:
    return function.startswith("peft.") and (
        function.rpartition(".")[2] in WRAPPERS
        or function.endswith("Config")
        or function.endswith(("PeftModel.from_pretrained", "PeftModelForCausalLM.from_pretrained"))
        or function.rpartition(".")[2] == KBIT_PREPARATION
    )


def call(
    self: Interpreter, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    if function.endswith("Config"):
        return _config(kwargs)
    model = args[0] if args else kwargs.get("model", UNKNOWN)
    if function.rpartition(".")[2] == KBIT_PREPARATION:
        return prepared_for_kbit(model, node)
    autocast = kwargs.get("autocast_adapter_dtype")
    if autocast is not None and not isinstance(autocast.const, bool):
        return UNKNOWN
    in_base_dtype = (
        autocast.const is False if autocast is not None else _base_dtype_adapters(self, ctx.scope.module.path)
    )
    config = args[1] if len(args) > 1 else kwargs.get("peft_config", kwargs.get("config", UNKNOWN))
    op = BASE_DTYPE_ADAPTERS if in_base_dtype else SAVED_MODULES if config.op == SAVING_CONFIG else FP32_ADAPTERS
    base = model if model.kind is Kind.MODULE else Value(Kind.MODULE)
    return base.with_(op=op, items=(), identity=base.identity or node)


def _config(kwargs: dict[str, Value]) -> Value:
    """`LoraConfig(task_type=TaskType.SEQ_CLS, ...)`, `LoraConfig(modules_to_save=["lm_head"])`: a
    config that trains copies of whole modules (`SAVING_CONFIG`), where known so."""
    task = kwargs.get("task_type", UNKNOWN)
    task_name = task.const if isinstance(task.const, str) else (task.name or "").rpartition(".")[2]
    saved = kwargs.get("modules_to_save", UNKNOWN)
    listed = saved.kind is Kind.ANY and isinstance(saved.payload, tuple) and len(saved.payload) > 0
    return Value(Kind.INSTANCE, op=SAVING_CONFIG) if task_name in _HEAD_TASKS or listed else UNKNOWN


# The peft releases whose `get_peft_model` creates LoRA adapters in the base layer's dtype.
BASE_DTYPE_ADAPTERS_SINCE: Version = (0, 7, 0)
ADAPTER_UPCAST_SINCE: Version = (0, 12, 0)


def _base_dtype_adapters(self: Interpreter, path: str) -> bool:
    """Whether the peft the repository of `path` pins (the newest, unpinned) creates adapters in the
    base's dtype by default."""
    version, read = pinned_version("peft", repository_root(path, self.index.root))
    self.data_files.update(read)
    return version is not None and BASE_DTYPE_ADAPTERS_SINCE <= version < ADAPTER_UPCAST_SINCE


def injected(self: Interpreter, path: str) -> str:
    """What `model.add_adapter(lora_config)` makes of a model (transformers' and diffusers'
    `PeftAdapterMixin`, which call peft's `mapping.py` `inject_adapter_in_model`: the tuner is built
    without `PeftModel.__init__`'s `_cast_adapter_dtype`, read in peft 0.21.2): the adapters stay in
    the base layers' dtype from 0.7.0 on (unpinned: the newest), fp32 before."""
    version, read = pinned_version("peft", repository_root(path, self.index.root))
    self.data_files.update(read)
    return BASE_DTYPE_ADAPTERS if version is None or version >= BASE_DTYPE_ADAPTERS_SINCE else FP32_ADAPTERS


def is_adapter_layer(tested: Value) -> bool:
    """Whether a class an `isinstance` test names is peft's LoRA layer (`peft.tuners.lora.LoraLayer`,
    the base of every LoRA module peft injects)."""
    return tested.name is not None and tested.name.endswith(".LoraLayer")


def with_adapters(model: Value, adapters: Value) -> Value:
    """A PEFT model whose adapters were cast (`adapters`: their parameters): what an optimizer over its
    trainable parameters updates."""
    return model.with_(items=((ADAPTERS, adapters),))


def prepared_for_kbit(model: Value, node: cst.Call) -> Value:
    """The model with every half parameter that is not 4-bit cast to fp32 (and frozen)."""
    return Value(Kind.MODULE, Precision.FP32, identity=model.identity or node)


def held_trainable_parameters(module: Value, identity: object) -> Value | None:
    """The trainable parameters of the PEFT models `module` holds at any depth (TRL's
    `PolicyAndValueWrapper(policy, value_model)` over LoRA models): half ones where a model's are,
    else of unknown dtype (fp32 adapters beside a frozen half base); None where it holds none."""
    found = None
    pending = [item for _, item in module.items]
    while pending:
        item = pending.pop()
        if item.op in OPS:
            params = parameters(item, identity)
            if params.precision.is_low:
                return params
            found = params
        elif item.kind is Kind.MODULE:
            pending.extend(sub for _, sub in item.items)
    return found


def parameters(receiver: Value, identity: object) -> Value:
    """`peft_model.parameters()`: what an optimizer over them updates are the adapters; fp32 ones
    (the default) make the whole of them of unknown dtype here (the frozen base may be half, but
    it is not updated); adapters in a half base's dtype are half, and so are the copies of a half
    base's modules to save, trained beside fp32 adapters."""
    adapters = receiver.item(ADAPTERS)
    if adapters is not None:
        return adapters.with_(identity=identity)
    if receiver.op in (BASE_DTYPE_ADAPTERS, SAVED_MODULES) and receiver.precision.is_low:
        if receiver.op == BASE_DTYPE_ADAPTERS:
            return Value(Kind.PARAMS, receiver.precision, origin=receiver.origin, identity=identity)
        origin = receiver.origin
        if origin is not None:  # named, as the reason is easy to miss: LoRA alone trains fp32 adapters
            origin = replace(origin, how=f"whose modules_to_save train as copies of a base {origin.how}")
        return Value(Kind.PARAMS, receiver.precision, origin=origin, identity=identity, op=HALF_TRAINABLE)
    return Value(Kind.PARAMS, identity=identity)
