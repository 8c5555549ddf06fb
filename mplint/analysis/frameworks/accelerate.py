"""accelerate, as far as precision goes: what an `Accelerator`'s mixed precision does to the models it
prepares, to its `autocast()` and to `backward`.

Read from accelerate 1.15.0 (`pip download accelerate==1.15.0`), `accelerator.py`:
- `Accelerator.__init__`: `mixed_precision="fp16"` on a GPU sets `native_amp` and builds a GradScaler;
  `"bf16"` sets `native_amp`; both only outside DeepSpeed/Megatron (whose engines manage precision).
  Without the argument, the launch configuration decides (`accelerate launch`, ACCELERATE_MIXED_PRECISION).
- `prepare_model`: with `native_amp`, `model.forward = convert_outputs_to_fp32(autocast(forward))`:
  the prepared model runs under autocast and returns fp32 outputs; its parameters keep their dtype
  (no fp32 master copy: a prepared optimizer over bf16 weights still updates bf16 weights).
- `autocast()`: the mixed-precision autocast context; `backward(loss)`: `self.scaler.scale(loss)`
  under fp16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import Context
from mplint.analysis.values import UNKNOWN, Kind, Precision, Region, Value, const

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

ACCELERATORS = frozenset({"accelerate.Accelerator", "accelerate.accelerator.Accelerator"})
MIXED_PRECISION = {"fp16": Precision.FP16, "bf16": Precision.BF16, "no": Precision.FP32}
# Plugins under which the framework, not the accelerator, decides the model's precision.
FRAMEWORK_PLUGINS = ("deepspeed_plugin", "fsdp_plugin", "megatron_lm_plugin")

# `Value.op` of an Accelerator (its payload: the mixed precision, None when the launch decides), and
# of a model it prepared (payload of the model unchanged): outputs in fp32, or in fp32 only when
# mixed precision turns out to be on.
ACCELERATOR = "accelerate.Accelerator"
FP32_OUTPUTS = "accelerate: fp32 outputs"
FP32_OUTPUTS_IF_MIXED = "accelerate: fp32 outputs under mixed precision"
# The item of an Accelerator built with a `deepspeed_plugin`.
DEEPSPEED = "deepspeed_plugin"


def accelerator(self: Interpreter, node: cst.Call, ctx: Context, kwargs: dict[str, Value]) -> Value:
    """`Accelerator(mixed_precision="bf16")`: an accelerator of that precision."""
    setting = kwargs.get("mixed_precision")
    precision = None
    if setting is not None and not any(plugin in kwargs for plugin in FRAMEWORK_PLUGINS):
        precision = MIXED_PRECISION.get(str(setting.const)) if isinstance(setting.const, str) else None
    if precision is Precision.FP16:
        self.loss_scaling_paths.add(ctx.scope.module.path)  # `accelerator.backward` scales
    items = ((DEEPSPEED, const(True)),) if "deepspeed_plugin" in kwargs else ()
    return Value(Kind.INSTANCE, op=ACCELERATOR, payload=precision, identity=node, items=items)


def method(
    self: Interpreter, receiver: Value, name: str, node: cst.Call, ctx: Context, args: list[Value]
) -> Value | None:
    """`accelerator.prepare(model, optimizer, ...)`, `accelerator.autocast()`; None for any other method."""
    precision = receiver.payload if isinstance(receiver.payload, Precision) else None
    if name in ("prepare", "prepare_model"):
        if receiver.item(DEEPSPEED) is not None:
            # `prepare` hands the optimizer to `deepspeed.initialize` (accelerator.py
            # `_prepare_deepspeed`): its engine steps fp32 master weights, as `deepspeed.py` says.
            optimizers = [value.payload for value in args if value.kind is Kind.OPTIMIZER]
            self.master_weights.update(optimizer for optimizer in optimizers if isinstance(optimizer, cst.Call))
        models = tuple(prepared(value, precision) for value in args)
        if len(models) == 1:
            return models[0]
        return Value(Kind.ANY, payload=models)
    if name == "autocast":
        if precision is None:
            return UNKNOWN
        return Value(
            Kind.AUTOCAST,
            payload=Region("cuda", precision, precision.is_low, ctx.scope.module.path, node),
        )
    if name == "backward" and precision is not Precision.FP32:
        self.loss_scaling_paths.add(ctx.scope.module.path)  # scaled whenever fp16 is on
    return None


def prepared(value: Value, precision: Precision | None) -> Value:
    """A prepared object: a model runs under autocast and returns fp32 outputs when mixed precision
    is on; everything else (optimizers, dataloaders) is handed back as it was, for precision. An
    object of unknown kind (a PEFT model) is marked too: called, it is no module of unknown
    provenance whose output takes the caller's autocast dtype."""
    if value.kind is Kind.ANY and value.precision is Precision.UNKNOWN and value.payload is None:
        return value.with_(op=FP32_OUTPUTS_IF_MIXED)
    if value.kind is not Kind.MODULE:
        return value
    if precision is Precision.FP32:
        return value
    return value.with_(op=FP32_OUTPUTS if precision is not None else FP32_OUTPUTS_IF_MIXED)


def output(module: Value, result: Value) -> Value:
    """What a prepared model's forward gives back, from what the model itself computes (`result`)."""
    if module.op == FP32_OUTPUTS or (module.op == FP32_OUTPUTS_IF_MIXED and result.precision is Precision.FP32):
        return result.with_(precision=Precision.FP32, origin=None)
    if module.op == FP32_OUTPUTS_IF_MIXED:
        return result.with_(precision=Precision.UNKNOWN, origin=None)
    return result
