"""Casts: the precision `.half()`/`.to(dtype)`/`.type(...)` casts to, the value it makes (a module's
submodules cast with it), a module cast in place by a statement (`model.half()`), and such a cast
made after an optimizer was built over the module's parameters and before that optimizer steps
(a `LateCast`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.bindings import binding_key
from mplint.analysis.facts import LateCast
from mplint.analysis.frameworks import peft
from mplint.analysis.scopes import Context, Scope
from mplint.analysis.values import MIXED, Kind, Origin, Precision, Value, alternatives, owners
from mplint.tree import dotted_text

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter


def cast_target(
    self: Interpreter, method: str, args: list[Value], kwargs: dict[str, Value], receiver: Value
) -> Precision | None:
    """The precision `.half()`/`.to(...)`/`.type(...)`/`.type_as(...)` casts to; UNKNOWN for an
    unresolvable dtype."""
    if method in api.CAST_METHODS and not args:
        return api.CAST_METHODS[method]
    if method == "to":
        candidates = [kwargs["dtype"]] if "dtype" in kwargs else args[:2]
        for candidate in candidates:
            precision = self.dtype_value(candidate)
            if precision is not None:
                return precision
            if candidate.kind is Kind.TENSOR:
                return candidate.precision  # x.to(other) takes other's dtype
        if "dtype" in kwargs:
            return Precision.UNKNOWN
        return None
    if method == "type" and args:
        return self.dtype_value(args[0]) or Precision.UNKNOWN
    if method == "type_as" and args:
        # `lora_b(lora_a(x)).type_as(x)`: the other tensor's dtype, unknown where that is.
        other = args[0]
        return other.precision if other.kind is Kind.TENSOR else self.dtype_value(other) or Precision.UNKNOWN
    return None


def cast(
    self: Interpreter, receiver: Value, precision: Precision, node: cst.Call, ctx: Context, how: str = "cast"
) -> Value:
    origin = Origin("", how, ctx.scope.module.path, node) if precision.is_low else None
    kind = receiver.kind if receiver.kind in (Kind.MODULE, Kind.TENSOR, Kind.PARAMS, Kind.INSTANCE) else Kind.ANY
    if kind is Kind.INSTANCE:
        kind = Kind.MODULE
    items = tuple(
        (name, self.cast(item, precision, node, ctx, how) if item.kind is Kind.MODULE else item)
        for name, item in receiver.items
    )
    identity = receiver.identity if receiver.identity is not None else node
    return receiver.with_(kind=kind, precision=precision, origin=origin, items=items, identity=identity, op=None)


def apply_in_place_cast(self: Interpreter, expression: cst.BaseExpression, value: Value, ctx: Context) -> None:
    """`model.half()` as a statement casts the module in place (a tensor cast there would be a no-op),
    also at the head of a chain (`model.to(dtype).to(device)`) and as an item (`models["policy"].half()`)."""
    if not (isinstance(expression, cst.Call) and isinstance(expression.func, cst.Attribute)):
        return
    target = expression.func.value
    while (
        isinstance(target, cst.Call)
        and isinstance(target.func, cst.Attribute)
        and (target.func.attr.value in api.MODULE_CASTS or target.func.attr.value in api.MODULE_PASSTHROUGH_METHODS)
    ):
        target = target.func.value
    if not isinstance(target, (cst.Name, cst.Attribute, cst.Subscript)) or value.kind not in (Kind.MODULE, Kind.ANY):
        return
    if value.precision is Precision.UNKNOWN and value.kind is Kind.ANY:
        return
    before = self.eval(target, ctx)
    if before.kind in (Kind.TENSOR, Kind.NAME, Kind.CONST):
        return
    handed_back = value.identity is before.identity and value.payload is before.payload
    if expression.func.attr.value not in api.MODULE_CASTS and (not handed_back or value == before):
        # A method that hands back another object (fuchsia's `self.load_model_to_gpu()` returns
        # `self.model`), or the receiver as it was (`self.apply(self.init_weights)` in `__init__`), casts
        # nothing: rebinding would drop what is known of the receiver's attributes (`self.clip`, cast in
        # part just before). A cast (`self.float()`) does rebind: its attributes are cast with it.
        return
    cast = value.with_(kind=Kind.MODULE)
    self.assign(target, cast, ctx)
    if value.precision is Precision.FP32 and isinstance(target, cst.Attribute):
        _cast_back_in_part(self, target, ctx)
    # `for text_encoder in text_encoders: text_encoder.to(weight_dtype)`: each of them is cast.
    identities = [each.identity for each in alternatives(before) if each.identity is not None]
    key = binding_key(target)
    for identity in identities or ([key] if key is not None else []):
        # `model.train()`, `.eval()`, `.cuda()` hand the module back as it was: only a change of
        # precision is a cast (a bf16 model put in train mode after its optimizer is no new bug).
        if value.precision.is_low and value.precision is not before.precision:
            self.note_cast_after_optimizer(expression, identity, value.precision, ctx)
        elif value.precision is Precision.FP32 and expression.func.attr.value in api.MODULE_CASTS:
            # Cast back before any step (`model.half()` to save it, then `model.float()`): no late cast.
            # (`m.train()` over a list holding the module as it was before its cast is no cast.)
            pending = self.frames[-1].pending_casts
            pending[:] = [late for late in pending if late.module != identity]


def _cast_back_in_part(self: Interpreter, submodule: cst.Attribute, ctx: Context) -> None:
    """A submodule of a half model cast back to fp32 (ChatGLM's P-tuning: `model.half()`, then
    `model.transformer.prefix_encoder.float()`, the one part it trains; a head upcast): the model is
    half in part, and which of its parameters train is not told by their dtype."""
    root: cst.BaseExpression = submodule
    while isinstance(root, cst.Attribute):
        root = root.value
    if not isinstance(root, cst.Name) or root.value == "self":
        return  # `self.head.float()` in `__init__`: the module's own layers, held as its items
    model = self.eval(root, ctx)
    if model.kind is Kind.MODULE and model.precision.is_low and model.op is None:
        self.assign(root, model.with_(op=MIXED), ctx)


def note_cast_after_optimizer(
    self: Interpreter, cast: cst.Call, identity: object, precision: Precision, ctx: Context
) -> None:
    for optimizer in _optimizers_over(identity, ctx):
        late = LateCast(
            cast,
            ctx.scope.module.path,
            optimizer,
            self.path_of_call(optimizer),
            precision,
            self.condition,
            identity,
            self.chain,
            self.call_sites,
        )
        self.frames[-1].pending_casts.append(late)


def _optimizers_over(identity: object, ctx: Context) -> list[cst.Call]:
    """The constructions of the optimizers in scope built over the parameters of the module `identity`."""
    found: list[cst.Call] = []
    scope: Scope | None = ctx.scope
    while scope is not None:
        for value in scope.names.values():
            if (
                value.kind is Kind.OPTIMIZER
                and identity in owners(value.identity)
                and isinstance(value.payload, cst.Call)
            ):
                found.append(value.payload)
        scope = scope.parent
    return found


def commit_late_casts(self: Interpreter, optimizer: Value) -> None:
    for late in self.frames[-1].pending_casts:
        if late.optimizer is optimizer.payload and self.keeps_facts_of(late.path):
            casts = self.late_casts.setdefault(late.cast, [])
            if late not in casts:
                casts.append(late)


def path_of_call(self: Interpreter, node: cst.Call) -> str:
    facts = self.facts.get(node)
    return facts[0].path if facts else ""


def apply_adapters(self: Interpreter, expression: cst.BaseExpression, ctx: Context) -> None:
    """`transformer.add_adapter(lora_config)` as a statement (PEFT through diffusers/Transformers)
    adds trainable adapters in the base layers' dtype (see `peft.injected`); other adapter methods
    (loading, merging) add parameters whose dtype this analysis does not follow, and
    `cast_training_params(model, dtype=torch.float32)` (diffusers) makes the trainable ones fp32:
    the model is then half only in part (`MIXED`), and the parameters chosen by `requires_grad` are
    of unknown dtype."""
    if not isinstance(expression, cst.Call):
        return
    func = expression.func
    op = MIXED
    upcast = False  # the trainable parameters made fp32
    if isinstance(func, cst.Attribute) and func.attr.value in api.ADAPTER_METHODS:
        targets: list[cst.BaseExpression] = [func.value]
        if func.attr.value == "add_adapter":
            op = peft.injected(self, ctx.scope.module.path)
    elif isinstance(func, (cst.Name, cst.Attribute)) and api.last_part(dotted_text(func)) in api.TRAINABLE_CASTS:
        if not expression.args:
            return
        upcast = True
        given = expression.args[0].value  # a model, or a list of them (`cast_training_params([transformer])`)
        targets = [element.value for element in given.elements] if isinstance(given, (cst.List, cst.Tuple)) else [given]
    else:
        return
    for target in targets:
        if upcast:
            upcast_trainable(self, target, ctx)
        elif isinstance(target, (cst.Name, cst.Attribute)):
            _mark(self, target, op, ctx)


def upcast_trainable(self: Interpreter, target: cst.BaseExpression, ctx: Context) -> None:
    """The trainable parameters of the model(s) `target` names made fp32 (`cast_training_params`, a
    loop `if p.requires_grad: p.data = p.to(torch.float32)`): a half model is half in part, and an
    optimizer already built over them steps fp32 parameters (diffusers' LCM LoRA trainer upcasts
    after building it, before it steps)."""
    if not isinstance(target, (cst.Name, cst.Attribute)):
        return
    model = _mark(self, target, MIXED, ctx)
    if model.identity is not None:
        self.give_master_weights(_optimizers_over(model.identity, ctx))


def _mark(self: Interpreter, target: cst.Name | cst.Attribute, op: str, ctx: Context) -> Value:
    """Mark the half model `target` names (or each one a list it names holds) with `op`; its value before."""
    model = self.eval(target, ctx)
    if _is_half_model(model):
        self.assign(target, model.with_(op=op, items=()), ctx)
    elif model.kind is Kind.ANY and isinstance(model.payload, tuple):
        _mark_held(ctx, model.payload, op)
    return model


def _mark_held(ctx: Context, models: tuple[Value, ...], op: str) -> None:
    """The models a list holds (diffusers' `models = [unet]`, `models.extend([text_encoder_one, ...])`,
    then `cast_training_params(models)`), marked under every local name bound to one of them."""
    identities = {model.identity for model in models if model.kind is Kind.MODULE and model.identity is not None}
    for name, value in list(ctx.scope.names.items()):
        if _is_half_model(value) and value.identity in identities:
            ctx.scope.names[name] = value.with_(op=op, items=())


def _is_half_model(value: Value) -> bool:
    return value.kind is Kind.MODULE and value.precision.is_low
