"""NVIDIA apex's amp, as far as precision goes: what `amp.initialize` does to models and optimizers.

Read from NVIDIA/apex (commit 0466713, `apex/amp/frontend.py` and `apex/amp/_initialize.py`):
- `initialize(models, optimizers=None, enabled=True, opt_level="O1", cast_model_type=None, ...,
  keep_batchnorm_fp32=None, master_weights=None, loss_scale=None, ...)` returns the models, and the
  optimizers when they were given; `enabled=False` returns them as they were.
- The levels (`O0`..`O3` classes): O0 casts models to fp32; O1 leaves the weights alone and patches
  torch's functions (Tensor Core ops in fp16, softmax and the like in fp32, as CUDA autocast does);
  O2 casts models to fp16 but keeps batchnorm fp32 and makes the optimizers step fp32 master
  weights; O3 casts models to fp16 entirely, without master weights. `master_weights=` overrides the
  level's choice.
- `_initialize` casts each model in place (`model.to(cast_model_type)`), so an optimizer built over
  its parameters before the call updates fp16 weights unless it got master weights.
Loss scaling (`with amp.scale_loss(loss, optimizer) as scaled: scaled.backward()`) gives the scaled
loss (`calls._scaled_loss`), whose gradients are unscaled when the block ends (`events`, read from
apex/amp/handle.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.bindings import binding_key
from mplint.analysis.scopes import Context
from mplint.analysis.values import MIXED, UNKNOWN, Kind, Precision, Value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

INITIALIZE = frozenset({"apex.amp.initialize", "apex.amp.frontend.initialize"})
# Per opt level: the dtype models are cast to (None: left as they are), whether batchnorm stays fp32,
# and whether the optimizers step fp32 master weights.
LEVELS: dict[str, tuple[Precision | None, bool, bool]] = {
    "O0": (Precision.FP32, False, False),
    "O1": (None, False, False),
    "O2": (Precision.FP16, True, True),
    "O3": (Precision.FP16, False, False),
}
POSITIONAL = ("models", "optimizers", "enabled", "opt_level")


def initialize(self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`model, optimizer = amp.initialize(model, optimizer, opt_level="O2")`: the models cast to the
    level's dtype (fp16 with batchnorm kept fp32 is half in part), the optimizers with fp32 master
    weights where the level (or `master_weights=True`) gives them; at an unknown level the models'
    precision is unknown and the optimizers are taken to have master weights (nothing to report)."""
    models = _argument("models", args, kwargs) or UNKNOWN
    optimizers = _argument("optimizers", args, kwargs)
    if not _flag(_argument("enabled", args, kwargs), True):
        return models if optimizers is None else Value(Kind.ANY, payload=(models, optimizers))
    level = LEVELS.get(str((_argument("opt_level", args, kwargs) or Value(Kind.CONST, payload="O1")).const))
    cast_to, keeps_batchnorm, masters = level or (Precision.UNKNOWN, False, True)
    keeps_batchnorm = _flag(kwargs.get("keep_batchnorm_fp32"), keeps_batchnorm)
    masters = _flag(kwargs.get("master_weights"), masters)
    stepped = _items(optimizers) if optimizers is not None else []
    if masters:
        self.give_master_weights([value.payload for value in stepped if isinstance(value.payload, cst.Call)])
    given = _items(models)
    written: list[cst.BaseExpression | None] = [*_written_models(node)]
    written += [None] * (len(given) - len(written))
    cast_models = [
        _cast(self, model, expression, cast_to, keeps_batchnorm, masters, node, ctx)
        for model, expression in zip(given, written, strict=False)
    ]
    returned = Value(Kind.ANY, payload=tuple(cast_models)) if _listed(models) is not None else cast_models[0]
    return returned if optimizers is None else Value(Kind.ANY, payload=(returned, optimizers))


def _cast(
    self: Interpreter,
    model: Value,
    written: cst.BaseExpression | None,
    precision: Precision | None,
    keeps_batchnorm: bool,
    masters: bool,
    node: cst.Call,
    ctx: Context,
) -> Value:
    """One model as `initialize` hands it back (what it is given is a model, whatever the analysis
    knew of it), its in-place cast noted against optimizers built before without master weights."""
    if precision is None or model.kind not in (Kind.MODULE, Kind.INSTANCE, Kind.ANY):
        return model
    if not precision.is_low:
        return model.with_(precision=precision, origin=None)
    model = model.with_(kind=Kind.MODULE)  # what `initialize` is given is a model
    if model.precision is precision:
        cast = model  # half already: its own cast is the origin
    else:
        cast = self.cast(model, precision, node, ctx, how=f"made {precision.value} by amp.initialize")
    identity = model.identity or (binding_key(written) if isinstance(written, (cst.Name, cst.Attribute)) else None)
    if not masters and identity is not None and not model.precision.is_low:
        self.note_cast_after_optimizer(node, identity, precision, ctx)  # cast in place
    return cast.with_(op=MIXED) if keeps_batchnorm else cast


def _argument(name: str, args: list[Value], kwargs: dict[str, Value]) -> Value | None:
    if name in kwargs:
        return kwargs[name]
    index = POSITIONAL.index(name)
    return args[index] if index < len(args) else None


def _written_models(node: cst.Call) -> list[cst.BaseExpression]:
    """The expressions the models are passed as: the elements of a list or tuple literal, or one."""
    arguments = [arg for arg in node.args if arg.keyword is None and arg.star == ""]
    passed = next((arg.value for arg in node.args if arg.keyword is not None and arg.keyword.value == "models"), None)
    if passed is None and arguments:
        passed = arguments[0].value
    if isinstance(passed, (cst.List, cst.Tuple)):
        return [element.value for element in passed.elements]
    return [passed] if passed is not None else []


def _listed(value: Value) -> tuple[object, ...] | None:
    """The items of an argument given as a list (or tuple) of models or optimizers; None for one."""
    return value.payload if value.kind is Kind.ANY and isinstance(value.payload, tuple) else None


def _items(value: Value) -> list[Value]:
    """The models or optimizers of an argument: a list of them, or one."""
    listed = _listed(value)
    return [value] if listed is None else [item for item in listed if isinstance(item, Value)]


def _flag(value: Value | None, default: bool) -> bool:
    """A boolean option as written (`True`, `"True"` as apex accepts it), else `default`."""
    written = value.const if value is not None else None
    if isinstance(written, str) and written in ("True", "False"):
        return written == "True"
    return written if isinstance(written, bool) else default
