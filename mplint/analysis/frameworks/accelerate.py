"""accelerate, as far as precision goes: what an `Accelerator`'s mixed precision does to the models it
prepares, to its `autocast()` and to `backward`.

Read from accelerate 1.15.0 (`pip download accelerate==1.15.0`), `accelerator.py`:
- `Accelerator.__init__`: `mixed_precision="fp16"` on a GPU sets `native_amp` and builds a GradScaler;
  `"bf16"` sets `native_amp`; both only outside DeepSpeed/Megatron (whose engines manage precision).
  Without the argument, the launch configuration decides (`accelerate launch`, ACCELERATE_MIXED_PRECISION).
- `prepare_model`: with `native_amp`, `model.forward = convert_outputs_to_fp32(autocast(forward))`:
  the prepared model runs under autocast and returns fp32 outputs; its parameters keep their dtype
  (no fp32 master copy: a prepared optimizer over bf16 weights still updates bf16 weights). What its
  own `forward` computes runs in that region: a per-token `cross_entropy` there keeps the region's
  dtype (alpaca_farm's PPO computes its log-probs inside the prepared policy's forward).
- `autocast()`: the mixed-precision autocast context; `backward(loss)`: `self.scaler.scale(loss)`
  under fp16.
- `_prepare_deepspeed` (the distributed type DEEPSPEED, from a `deepspeed_plugin` or from the launch
  configuration, `accelerate_launch`): `native_amp` stays off (no autocast, no fp32 outputs) and
  `deepspeed.initialize(model=..., optimizer=..., config=...)` builds the engine, whose config has the
  `fp16`/`bf16` section of the mixed precision on (`DeepSpeedPlugin.set_mixed_precision`): the engine
  casts the model to that dtype in place (`deepspeed.py`), and `prepare` hands the engine back for each
  model it was given; `backward` is the engine's, which scales fp16 losses.
- `unwrap_model(model, keep_fp32_wrapper=True)` (`utils/other.py` `extract_model_from_parallel`): the
  model itself (a DeepSpeed engine's `module`, cast in place), its fp32-outputs forward kept unless
  `keep_fp32_wrapper=False`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.frameworks.accelerate_launch import MIXED_PRECISION, LaunchConfig, launch_of
from mplint.analysis.scopes import Context
from mplint.analysis.values import NOT_GIVEN, UNKNOWN, Kind, Precision, Region, Value, const, is_none

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

ACCELERATORS = frozenset({"accelerate.Accelerator", "accelerate.accelerator.Accelerator"})
# Plugins under which the framework, not the accelerator, decides the model's precision.
FRAMEWORK_PLUGINS = ("deepspeed_plugin", "fsdp_plugin", "megatron_lm_plugin")

# `Value.op` of an Accelerator (its payload: the mixed precision, None when the launch decides), and
# of a model it prepared (payload of the model unchanged): outputs in fp32, or in fp32 only when
# mixed precision turns out to be on.
ACCELERATOR = "accelerate.Accelerator"
FP32_OUTPUTS = "accelerate: fp32 outputs"
FP32_OUTPUTS_IF_MIXED = "accelerate: fp32 outputs under mixed precision"
# The item of an Accelerator whose models DeepSpeed's engine runs: True for one built with a
# `deepspeed_plugin` (its precision is the plugin's), the config's name when the launch configuration says so.
DEEPSPEED = "deepspeed_plugin"
DEEPSPEED_PLUGIN = "accelerate DeepSpeedPlugin"  # `Value.op` of the plugin an accelerator holds
# The methods whose precision effects `method` knows: a subclass that overrides one is not an Accelerator.
METHODS = ("prepare", "prepare_model", "unwrap_model", "autocast", "backward")
# The item of a prepared model holding the autocast region its forward runs in.
FORWARD_REGION = "accelerate: forward region"


def accelerator(self: Interpreter, node: cst.Call, ctx: Context, kwargs: dict[str, Value]) -> Value:
    """`Accelerator(mixed_precision="bf16")`: an accelerator of that precision; without the argument,
    of the launch configuration's, which also says whether DeepSpeed's engine runs the model."""
    setting = kwargs.get("mixed_precision")
    # A plugin known to be None is none (sd-scripts' `prepare_deepspeed_plugin(args)` without `--deepspeed`).
    plugins = {name for name in FRAMEWORK_PLUGINS if name in kwargs and not is_none(kwargs[name])}
    plugin = bool(plugins)
    launch = None if plugin else launch_config(self, ctx)
    precision = None
    if plugin or (launch is not None and launch.megatron):
        precision = None  # the plugin's framework decides
    elif setting is not None and not is_none(setting):
        precision = MIXED_PRECISION.get(str(setting.const)) if isinstance(setting.const, str) else None
    elif launch is not None:
        precision = launch.precision
    if precision is Precision.FP16:
        self.note_loss_scaling(ctx.scope.module.path)  # `accelerator.backward` scales
    items: tuple[tuple[str, Value], ...] = ()
    if "deepspeed_plugin" in plugins:
        items = ((DEEPSPEED, const(True)),)
    elif launch is not None and launch.deepspeed:
        items = ((DEEPSPEED, const(launch.name)),)
    elif launch is not None and not plugins:
        items = ((DEEPSPEED, const(None)),)  # a launch configuration known to bring no DeepSpeed
    return Value(Kind.INSTANCE, op=ACCELERATOR, payload=precision, identity=node, items=items)


def setting(accelerator: Value, attr: str) -> Value | None:
    """`accelerator.mixed_precision`: the setting the accelerator was built with ("fp16", "bf16" or
    "no"), where known (accelerate 1.x: `Accelerator.mixed_precision` is the state's, the one given
    or the launch configuration's). Code tests it to pick the dtype of its frozen models (diffusers'
    and DDPO's `weight_dtype`). `accelerator.state` holds the same settings, and its
    `deepspeed_plugin` is None under a launch configuration without DeepSpeed (CogVideoX's trainers
    pick `weight_dtype` from the DeepSpeed config when there is one). None for another attribute."""
    if accelerator.op != ACCELERATOR:
        return None
    if attr == "state":
        return accelerator
    if attr == DEEPSPEED:
        if _engine(accelerator) is not None:
            # `getattr(accelerator.state, "deepspeed_plugin", None) is not None` (TRL's trainers decide
            # `is_deepspeed_enabled` so): the plugin a DeepSpeed launch or `deepspeed_plugin=` gives.
            return Value(Kind.INSTANCE, op=DEEPSPEED_PLUGIN)
        known_off = accelerator.item(DEEPSPEED) is not None
        return const(None).with_(op=NOT_GIVEN) if known_off else UNKNOWN
    if attr != "mixed_precision":
        return None
    setting = _SETTINGS.get(accelerator.payload) if isinstance(accelerator.payload, Precision) else None
    return UNKNOWN if setting is None else const(setting)


def scales_losses(accelerator: Value) -> bool:
    """Whether `accelerator.backward(loss)` scales the loss: an accelerator known to run fp16
    (`self.scaler.scale(loss).backward()`), on whichever path the call is read (the file-wide record
    of loss scaling does not outlive a run under an option such as `--mixed_precision fp16`)."""
    return accelerator.op == ACCELERATOR and accelerator.payload is Precision.FP16


# The `mixed_precision` setting that gives each precision.
_SETTINGS = {precision: name for name, precision in MIXED_PRECISION.items()}


def _engine(accelerator: Value) -> Value | None:
    """What says DeepSpeed's engine runs the accelerator's models (its plugin, or the launch
    configuration's name), None where it does not or may not."""
    engine = accelerator.item(DEEPSPEED)
    return engine if engine is not None and not is_none(engine) else None


def launch_config(self: Interpreter, ctx: Context) -> LaunchConfig | None:
    """The launch configuration the script being analysed runs under by default (None: unknown),
    or the non-default one this interpreter reads (`Interpreter.launch_override`). The files read
    are dependencies; the repository's other configurations are left for `analyze` to read."""
    if self.launch_override is not None:
        return self.launch_override
    script = self.entry or ctx.scope.module.path
    if script not in self.launches:
        self.launches[script] = launch_of(script, self.index.root)
    launch = self.launches[script]
    self.data_files.update(launch.read)
    for config, condition in launch.alternatives:
        self.launch_alternatives.setdefault(condition, config)
    return launch.default


def launched_without_config(self: Interpreter, ctx: Context) -> bool:
    """Whether the script being analysed is started with no accelerate configuration: its repository
    holds none, or its commands start it plainly (`python train.py`, `torchrun`), so no launch brings
    DeepSpeed or FSDP to it by default."""
    launch_config(self, ctx)
    script = self.entry or ctx.scope.module.path
    return self.launch_override is None and self.launches[script].without_config


def method(
    self: Interpreter,
    receiver: Value,
    name: str,
    node: cst.Call,
    ctx: Context,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value | None:
    """`accelerator.prepare(model, optimizer, ...)`, `accelerator.autocast()`, `unwrap_model(model)`;
    None for any other method."""
    precision = receiver.payload if isinstance(receiver.payload, Precision) else None
    engine = _engine(receiver)
    if name in ("prepare", "prepare_model"):
        if engine is not None:
            # `prepare` hands the optimizer to `deepspeed.initialize` (accelerator.py
            # `_prepare_deepspeed`): its engine steps fp32 master weights, as `deepspeed.py` says.
            optimizers = [value.payload for value in args if value.kind is Kind.OPTIMIZER]
            self.give_master_weights([optimizer for optimizer in optimizers if isinstance(optimizer, cst.Call)])
        if engine is not None and isinstance(engine.const, str):
            models = tuple(_deepspeed_engine(self, value, precision, engine.const, node, ctx) for value in args)
        else:
            models = tuple(prepared(value, precision, node, ctx) for value in args)
        if len(models) == 1:
            return models[0]
        return Value(Kind.ANY, payload=models)
    if name == "unwrap_model" and args:
        keeps_wrapper = kwargs.get("keep_fp32_wrapper", const(True)).const is not False
        unwrapped = args[0]
        if keeps_wrapper or unwrapped.op not in (FP32_OUTPUTS, FP32_OUTPUTS_IF_MIXED):
            return unwrapped
        return unwrapped.with_(op=None)
    if name == "autocast":
        if precision is None or engine is not None:
            return UNKNOWN  # under DeepSpeed, `native_amp` is off: a null context
        return Value(
            Kind.AUTOCAST,
            payload=Region("cuda", precision, precision.is_low, ctx.scope.module.path, node),
        )
    if name == "backward" and precision is not Precision.FP32:
        self.note_loss_scaling(ctx.scope.module.path)  # scaled whenever fp16 is on
    return None


# TRL's helpers that hand a model to `deepspeed.initialize` with a copy of the accelerate DeepSpeed
# plugin's config (the launch's mixed precision), for reference and reward models: trl 0.11-0.12
# `trainer/utils.py` `prepare_deepspeed(model, per_device_train_batch_size, fp16, bf16)` (ZeRO-3 also
# enables the flag given), trl 0.13+ `models/utils.py` `prepare_deepspeed(model, accelerator)`.
DEEPSPEED_PREPARERS = frozenset({"trl.trainer.utils.prepare_deepspeed", "trl.models.utils.prepare_deepspeed"})


# TRL's context manager around generation: `with unwrap_model_for_generation(model, accelerator) as
# unwrapped:` binds `accelerator.unwrap_model(model)` (ZeRO-3: the engine itself), which keeps the fp32
# wrapper of a prepared model's forward. Read in trl 0.11's and 0.19's `models/utils.py`.
GENERATION_UNWRAPPERS = frozenset(
    {"trl.models.utils.unwrap_model_for_generation", "trl.models.unwrap_model_for_generation"}
)


def deepspeed_prepared(self: Interpreter, model: Value, node: cst.Call, ctx: Context) -> Value:
    """What TRL's `prepare_deepspeed(model, ...)` gives under the script's accelerate launch: a model
    run by a DeepSpeed engine in the launch's mixed precision; unknown without a DeepSpeed launch."""
    launch = launch_config(self, ctx)
    if launch is None or not launch.deepspeed:
        return model.with_(precision=Precision.UNKNOWN, origin=None) if model.kind is Kind.MODULE else UNKNOWN
    return _deepspeed_engine(self, model, launch.precision, launch.name, node, ctx)


def _deepspeed_engine(
    self: Interpreter, value: Value, precision: Precision | None, config: str, node: cst.Call, ctx: Context
) -> Value:
    """What `prepare` hands back for `value` under a DeepSpeed launch configuration: a model cast to
    the mixed precision's dtype (left as it is under "no", unknown under an unknown precision);
    anything else as it was."""
    if value.kind is not Kind.MODULE or precision is Precision.FP32:
        return value
    if precision is None:
        return value.with_(precision=Precision.UNKNOWN, origin=None)
    how = f"made {precision.value} by DeepSpeed (accelerate launch config {config})"
    return self.cast(value, precision, node, ctx, how=how)


def prepared(value: Value, precision: Precision | None, node: cst.Call, ctx: Context) -> Value:
    """A prepared object (by the call `node`): a model runs under autocast and returns fp32 outputs
    when mixed precision is on; everything else (optimizers, dataloaders) is handed back as it was,
    for precision. An object of unknown kind (a PEFT model) is marked too: called, it is no module of
    unknown provenance whose output takes the caller's autocast dtype."""
    if value.kind is Kind.ANY and value.precision is Precision.UNKNOWN and value.payload is None:
        return value.with_(op=FP32_OUTPUTS_IF_MIXED)
    if value.kind is not Kind.MODULE:
        return value
    if precision is Precision.FP32:
        return value
    if precision is None or not precision.is_low:
        return value.with_(op=FP32_OUTPUTS_IF_MIXED)
    region = Value(Kind.AUTOCAST, payload=Region("cuda", precision, True, ctx.scope.module.path, node))
    items = (*(item for item in value.items if item[0] != FORWARD_REGION), (FORWARD_REGION, region))
    return value.with_(op=FP32_OUTPUTS, items=items)


def forward_region(module: Value) -> Region | None:
    """The autocast region a prepared model's forward runs in (None: not prepared under mixed precision)."""
    found = module.item(FORWARD_REGION) if module.op == FP32_OUTPUTS else None
    return found.payload if found is not None and isinstance(found.payload, Region) else None


def output(module: Value, result: Value) -> Value:
    """What a prepared model's forward gives back, from what the model itself computes (`result`).
    accelerate's `convert_outputs_to_fp32` converts every tensor of a tuple or a record it returns
    (`recursively_apply`): `return self.policy(**kwargs), value_logits` gives two fp32 outputs."""
    if module.op not in (FP32_OUTPUTS, FP32_OUTPUTS_IF_MIXED) or result.kind is Kind.CONST:
        return result  # a setting returned beside the outputs (`return logits, None`) is no tensor
    if isinstance(result.payload, tuple) and result.kind is Kind.ANY:
        return result.with_(payload=tuple(output(module, element) for element in result.payload))
    if result.kind is Kind.DICT:
        return result.with_(items=tuple((key, output(module, item)) for key, item in result.items))
    if module.op == FP32_OUTPUTS or result.precision is Precision.FP32:
        return result.with_(precision=Precision.FP32, origin=None)
    return result.with_(precision=Precision.UNKNOWN, origin=None)
