"""Lightning's `Trainer` and Fabric, as far as precision goes: what `precision=` does to the module,
its optimizers and its outputs.

Read from lightning 2.6.6 (`pip download lightning==2.6.6`):
- `fabric/plugins/precision/precision.py`: the settings are "16-mixed", "bf16-mixed", "16-true",
  "bf16-true", "32-true", "64-true" (and transformer-engine ones); the aliases 16/"16" -> "16-mixed",
  "bf16" -> "bf16-mixed", 32/"32" -> "32-true" (`fabric/connector.py`
  `_convert_precision_to_unified_args`, `str(precision)` first); without `precision=`, "32-true".
- `fabric/plugins/precision/amp.py` / `pytorch/plugins/precision/amp.py` (mixed): the forward runs
  under `torch.autocast(device, dtype=bf16 or fp16)`, a `GradScaler` scales "16-mixed" losses in
  `backward`; the module keeps its fp32 weights (no MP002, no MP003).
- `.../precision/half.py` (true): `convert_module` is `module.to(dtype=bf16 or fp16)`;
  `pytorch/strategies/strategy.py` `setup` converts the module, then `setup_optimizers`: the
  optimizers `configure_optimizers` builds update half weights (MP003), and `training_step` computes
  in half, with no autocast.
- `fabric/wrappers.py` `_FabricModule.forward`: `with precision.forward_context(): output =
  module(...)`, then `precision.convert_output(output)`, which both AMP and half precision make
  `torch.get_default_dtype()` (fp32): a Fabric-set-up module returns fp32 outputs.
  `fabric/fabric.py` `setup`/`setup_module` run `convert_module` on the module, in place (the
  parameters an optimizer was built over become half).

Read from lightning 2.6.6 (the wheel's `lightning/fabric/...`), for `init_module`, strategies and
outputs:
- `fabric/fabric.py` `init_module(empty_init=None)` is `strategy.module_init_context(empty_init)`;
  `strategies/strategy.py` enters `precision.module_init_context()`, which `plugins/precision/
  half.py` (`HalfPrecision`, "16-true"/"bf16-true") makes `_DtypeContextManager(bf16 or fp16)`
  (`plugins/precision/utils.py`: `torch.set_default_dtype` on enter, the previous one restored on
  exit): a model built in `with fabric.init_module():` has half parameters from the start
  (`init_tensor()`, the strategy's `tensor_init_context`, enters the same for tensors).
  `strategies/fsdp.py` enters the same (`plugins/precision/fsdp.py`: half for "*-true", fp32 for
  "*-mixed"); `strategies/deepspeed.py` only below ZeRO-3. `amp.py` (mixed) leaves it a
  `nullcontext`.
- `fabric/fabric.py` `setup` wraps the optimizer in `_FabricOptimizer` (`fabric/wrappers.py`),
  whose `step` is the strategy's `optimizer_step` of the optimizer itself: no fp32 master copy,
  except under `DeepSpeedStrategy` (the DeepSpeed engine's optimizer keeps fp32 masters).
- `fabric/fabric.py` `launch(function, *args, **kwargs)` is `_wrap_and_launch(function, self, *args,
  **kwargs)`: the function runs with the Fabric as its first argument (in every process a launcher
  starts, the same code).
- `convert_output` is `torch.get_default_dtype()` (fp32) for the AMP, half, FSDP, DeepSpeed,
  double, bitsandbytes and transformer-engine plugins; the base plugin ("32-true" without
  FSDP/DeepSpeed) returns the output as the module computed it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.frameworks import accelerate
from mplint.analysis.scopes import Context
from mplint.analysis.statements import DEFAULT_DTYPE
from mplint.analysis.summaries import Definition, with_stored
from mplint.analysis.values import UNKNOWN, Kind, Origin, Precision, Region, Value, const

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

TRAINERS = frozenset({"lightning.Trainer", "lightning.pytorch.Trainer", "pytorch_lightning.Trainer"})
FABRICS = frozenset({"lightning.Fabric", "lightning.fabric.Fabric", "lightning_fabric.Fabric"})
# precision= -> (dtype, mixed: autocast over fp32 weights, else half weights)
SETTINGS: dict[str, tuple[Precision, bool]] = {
    "16-mixed": (Precision.FP16, True),
    "bf16-mixed": (Precision.BF16, True),
    "16-true": (Precision.FP16, False),
    "bf16-true": (Precision.BF16, False),
    "32-true": (Precision.FP32, False),
    "64-true": (Precision.FP64, False),
}
ALIASES = {"16": "16-mixed", "bf16": "bf16-mixed", "32": "32-true", "64": "64-true"}
# Strategy classes (any of lightning's packages) -> what they do to precision: "deepspeed" (fp32
# masters), "fsdp" (its own precision plugin) or "plain" (the precision plugin alone).
STRATEGIES = {
    "DeepSpeedStrategy": "deepspeed",
    "FSDPStrategy": "fsdp",
    "DDPStrategy": "plain",
    "SingleDeviceStrategy": "plain",
    "DataParallelStrategy": "plain",
}
# `strategy="..."` strings: a prefix -> the same.
STRATEGY_NAMES = {
    "deepspeed": "deepspeed",
    "fsdp": "fsdp",
    "ddp": "plain",
    "dp": "plain",
    "single": "plain",
    "auto": "plain",
}
PACKAGES = ("lightning.", "pytorch_lightning.", "lightning_fabric.")
# `Value.op` of a strategy object; its payload is its kind.
STRATEGY = "lightning.Strategy"
# `Value.op` of a Trainer and of a Fabric; their payload: the setting, None when unknown.
TRAINER = "lightning.Trainer"
FABRIC = "lightning.Fabric"
OPS = frozenset({TRAINER, FABRIC})


def setting(kwargs: dict[str, Value]) -> tuple[Precision, bool] | None:
    """The (dtype, mixed) that `precision=` asks for; None when it is not known here."""
    if "precision" not in kwargs:
        return SETTINGS["32-true"]
    value = kwargs["precision"].const
    if value is None or isinstance(value, (bool, frozenset)) or not isinstance(value, (str, int)):
        return SETTINGS["32-true"] if kwargs["precision"].kind is Kind.CONST and value is None else None
    text = str(value)
    return SETTINGS.get(ALIASES.get(text, text))


def is_strategy(function: str) -> bool:
    return function.startswith(PACKAGES) and api.last_part(function) in STRATEGIES


def strategy_object(function: str) -> Value:
    """`DeepSpeedStrategy(config=...)`, `FSDPStrategy(...)`: a strategy of known kind."""
    return Value(Kind.INSTANCE, op=STRATEGY, payload=STRATEGIES[api.last_part(function)])


def strategy_kind(kwargs: dict[str, Value]) -> str | None:
    """What `strategy=` is ("plain", "fsdp", "deepspeed"); None when it is not known here."""
    if "strategy" not in kwargs:
        return "plain"  # "auto": one device, or DDP
    value = kwargs["strategy"]
    if value.op == STRATEGY and isinstance(value.payload, str):
        return value.payload
    if isinstance(value.const, str):
        name = value.const.lower()
        return next((kind for prefix, kind in STRATEGY_NAMES.items() if name.startswith(prefix)), None)
    return None


def construct(self: Interpreter, node: cst.Call, ctx: Context, function: str, kwargs: dict[str, Value]) -> Value:
    """`Trainer(precision=...)`, `Fabric(precision=...)`: "16-mixed" scales its losses."""
    found = setting(kwargs)
    if found is None or found == SETTINGS["16-mixed"]:
        self.note_loss_scaling(ctx.scope.module.path)  # may scale, or scales
    strategy = (("strategy", const(strategy_kind(kwargs))),)
    op = TRAINER if function in TRAINERS else FABRIC
    return Value(Kind.INSTANCE, op=op, payload=found, items=strategy, identity=node)


def method(
    self: Interpreter,
    receiver: Value,
    name: str,
    node: cst.Call,
    ctx: Context,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value | None:
    found = receiver.payload if isinstance(receiver.payload, tuple) else None
    strategy = receiver.item("strategy")
    kind = strategy.const if strategy is not None else None
    if receiver.op == TRAINER and name == "fit":
        model = kwargs.get("model", args[0] if args else UNKNOWN)
        half = found[0] if found is not None and not found[1] and found[0].is_low else None
        # Under "32-true" (the default) the module trains as it was built: a bf16 one with the
        # plain optimizers `configure_optimizers` returns (quiet-star's Trainer without precision=).
        if half is not None or kind == "deepspeed" or found == SETTINGS["32-true"]:
            _fit(self, model, half, kind == "deepspeed", node, ctx)
        return UNKNOWN
    if receiver.op != FABRIC:
        return None
    if name in ("setup", "setup_module"):
        return _set_up(self, found, kind, node, ctx, args)
    if name in ("init_module", "init_tensor"):
        return _init_module(found, kind, node, ctx)
    if name == "launch" and args and args[0].kind is Kind.FUNCTION and isinstance(args[0].payload, Definition):
        # `fabric.launch(main, *args)`: `_wrap_and_launch(function, self, *args, **kwargs)`, the
        # function run with the Fabric first (in each process a launcher spawns, the same code).
        return self.call_definition(args[0].payload, [receiver, *args[1:]], kwargs, ctx.region)[0]
    if name == "autocast":
        if found is None:
            return UNKNOWN
        precision, mixed = found
        return Value(Kind.AUTOCAST, payload=Region("cuda", precision, mixed, ctx.scope.module.path, node))
    return None  # `fabric.backward(loss)`: scaled under "16-mixed" (see `construct`), else a plain backward


def _fit(
    self: Interpreter, model: Value, half: Precision | None, deepspeed: bool, node: cst.Call, ctx: Context
) -> None:
    """`Trainer(precision="bf16-true").fit(model)`: the LightningModule's methods that build its
    optimizers and compute its loss run on the module converted to half. Under `DeepSpeedStrategy`
    (whatever the precision) the optimizers `configure_optimizers` returns are wrapped by the
    DeepSpeed engine, which steps fp32 masters (lightning 2.6.6 `pytorch/strategies/deepspeed.py`
    `_setup_model_and_optimizer`: `deepspeed.initialize(optimizer=...)` with its config's bf16/fp16
    section from the precision plugin)."""
    definition = model.payload if isinstance(model.payload, Definition) else None
    if model.kind is not Kind.MODULE or definition is None:
        return
    # `pytorch/trainer/trainer.py` `_run`: the `setup(stage)` and `configure_model()` hooks run before
    # `strategy.setup` converts the module; what they build (litgpt's `LLM.trainer_setup` making its
    # GPT in `setup`) is converted with it.
    for name, args in (("setup", [const("fit")]), ("configure_model", [])):
        hook = _own_method(self, definition, name)
        if hook is not None:
            model = with_stored(model, self.call_definition(hook, args, {}, None, receiver=model)[1])
    if half is not None:
        how = f"converted to {half.value} by Lightning's Trainer(precision=...)"
        model = self.cast(model, half, node, ctx, how=how)
    for name in ("configure_optimizers", "training_step"):
        method = _own_method(self, definition, name)
        if method is None:
            continue
        returned = self.call_definition(method, [], {}, None, receiver=model)[0]
        if deepspeed and name == "configure_optimizers":
            self.give_master_weights(_optimizers_in(returned))


def _optimizers_in(returned: Value) -> list[cst.Call]:
    """The constructions of the optimizers `configure_optimizers` returns, in any of the shapes
    Lightning accepts (`pytorch/core/optimizer.py` `_configure_optimizers`): one optimizer, a list or
    tuple of them, `([optimizers], [schedulers])`, a dict with an "optimizer" key, or a list of those."""
    if returned.kind is Kind.OPTIMIZER:
        return [returned.payload] if isinstance(returned.payload, cst.Call) else []
    if returned.kind is Kind.DICT:
        held = returned.item("optimizer")
        return _optimizers_in(held) if held is not None else []
    if returned.kind is Kind.ANY and isinstance(returned.payload, tuple):
        return [found for element in returned.payload for found in _optimizers_in(element)]
    return []


def _own_method(self: Interpreter, definition: Definition, name: str) -> Definition | None:
    """A method of the LightningModule that the linted code defines (not lightning's own)."""
    method = definition.method(name)
    if method is not None and method.owner is not None and method.owner.path in self.modules:
        return method
    return None


def _init_module(found: tuple[Precision, bool] | None, strategy: object, node: cst.Call, ctx: Context) -> Value:
    """`with fabric.init_module():` under a true half precision: the default dtype is that half
    dtype while the body builds the model. Under DeepSpeed (fp32 masters, ZeRO-3's own init) or an
    unknown strategy: nothing said."""
    if found is None or found[1] or not found[0].is_low or strategy not in ("plain", "fsdp"):
        return UNKNOWN
    how = f"built in {found[0].value} under Fabric(precision=...).init_module()"
    origin = Origin("", how, ctx.scope.module.path, node)
    return Value(Kind.ANY, found[0], origin=origin, op=DEFAULT_DTYPE)


def _set_up(
    self: Interpreter,
    found: tuple[Precision, bool] | None,
    strategy: object,
    node: cst.Call,
    ctx: Context,
    args: list[Value],
) -> Value:
    """`model, optimizer = fabric.setup(model, optimizer)`: the module converted to half under a
    true precision (in place: an optimizer built over it before updates half weights; DeepSpeed's
    keeps fp32 masters), and returning fp32 outputs under every setting but "32-true" with a plain
    strategy (the module's own)."""
    if not args:
        return UNKNOWN
    model = args[0]
    if strategy == "deepspeed":
        for optimizer in args[1:]:
            if optimizer.kind is Kind.OPTIMIZER and isinstance(optimizer.payload, cst.Call):
                self.give_master_weights([optimizer.payload])
    elif model.kind is Kind.MODULE and found is not None and not found[1] and found[0].is_low:
        how = f"converted to {found[0].value} by Fabric(precision=...)"
        model = self.cast(model, found[0], node, ctx, how=how)
        identity = args[0].identity
        if identity is not None:
            self.note_cast_after_optimizer(node, identity, found[0], ctx)
    if model.kind in (Kind.MODULE, Kind.ANY) and not (found == SETTINGS["32-true"] and strategy == "plain"):
        model = model.with_(op=accelerate.FP32_OUTPUTS)
    if len(args) == 1:
        return model
    return Value(Kind.ANY, payload=(model, *args[1:]))
