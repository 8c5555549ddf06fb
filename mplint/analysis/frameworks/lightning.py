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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.frameworks import accelerate
from mplint.analysis.scopes import Context
from mplint.analysis.summaries import Definition
from mplint.analysis.values import UNKNOWN, Kind, Precision, Region, Value

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


def construct(self: Interpreter, node: cst.Call, ctx: Context, function: str, kwargs: dict[str, Value]) -> Value:
    """`Trainer(precision=...)`, `Fabric(precision=...)`: "16-mixed" scales its losses."""
    found = setting(kwargs)
    if found is None or found == SETTINGS["16-mixed"]:
        self.loss_scaling_paths.add(ctx.scope.module.path)  # may scale, or scales
    return Value(Kind.INSTANCE, op=TRAINER if function in TRAINERS else FABRIC, payload=found, identity=node)


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
    if receiver.op == TRAINER and name == "fit":
        model = kwargs.get("model", args[0] if args else UNKNOWN)
        if found is not None and not found[1] and found[0].is_low:
            _fit_half(self, model, found[0], node, ctx)
        return UNKNOWN
    if receiver.op != FABRIC:
        return None
    if name in ("setup", "setup_module"):
        return _set_up(self, found, node, ctx, args)
    if name == "autocast":
        if found is None:
            return UNKNOWN
        precision, mixed = found
        return Value(Kind.AUTOCAST, payload=Region("cuda", precision, mixed, ctx.scope.module.path, node))
    return None  # `fabric.backward(loss)`: scaled under "16-mixed" (see `construct`), else a plain backward


def _fit_half(self: Interpreter, model: Value, precision: Precision, node: cst.Call, ctx: Context) -> None:
    """`Trainer(precision="bf16-true").fit(model)`: the LightningModule's methods that build its
    optimizers and compute its loss run on the module converted to half."""
    definition = model.payload if isinstance(model.payload, Definition) else None
    if model.kind is not Kind.MODULE or definition is None:
        return
    how = f"converted to {precision.value} by Lightning's Trainer(precision=...)"
    half = self.cast(model, precision, node, ctx, how=how)
    for name in ("configure_optimizers", "training_step"):
        method = definition.method(name)
        if method is not None and method.owner is not None and method.owner.path in self.modules:
            self.call_definition(method, [], {}, None, receiver=half)


def _set_up(
    self: Interpreter, found: tuple[Precision, bool] | None, node: cst.Call, ctx: Context, args: list[Value]
) -> Value:
    """`model, optimizer = fabric.setup(model, optimizer)`: the module converted to half under a
    true precision (in place: an optimizer built over it before updates half weights), and
    returning fp32 outputs whatever the setting."""
    if not args:
        return UNKNOWN
    model = args[0]
    if model.kind is Kind.MODULE and found is not None and not found[1] and found[0].is_low:
        how = f"converted to {found[0].value} by Fabric(precision=...)"
        model = self.cast(model, found[0], node, ctx, how=how)
        identity = args[0].identity
        if identity is not None:
            self.note_cast_after_optimizer(node, identity, found[0], ctx)
    if model.kind is Kind.MODULE:
        model = model.with_(op=accelerate.FP32_OUTPUTS)
    if len(args) == 1:
        return model
    return Value(Kind.ANY, payload=(model, *args[1:]))
