"""What a value can be, as far as precision goes: the abstract domain of the precision model.

Values are immutable; the interpreter (`interpreter.py`) builds new ones. Every low-precision value
remembers its `Origin` (the cast, load or autocast region it came from) so that a finding can
say *why* a tensor is half, not just that it is.
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, TypedDict, cast

import libcst as cst

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from 3.11


class Precision(enum.Enum):
    FP64 = "float64"
    FP32 = "float32"
    BF16 = "bfloat16"
    FP16 = "float16"
    HALF = "bfloat16 or float16"  # low precision, but which one depends on a runtime condition
    UNKNOWN = "unknown"

    @property
    def is_low(self) -> bool:
        return self in (Precision.BF16, Precision.FP16, Precision.HALF)

    @property
    def is_full(self) -> bool:
        return self in (Precision.FP32, Precision.FP64)

    def join(self, other: Precision) -> Precision:
        """What a name holds when two control-flow paths meet."""
        if self is other:
            return self
        if self.is_low and other.is_low:
            return Precision.HALF
        return Precision.UNKNOWN

    def promote(self, other: Precision) -> Precision:
        """torch's type promotion for a binary op between two floating tensors."""
        if self is other:
            return self
        if Precision.UNKNOWN in (self, other):
            return Precision.UNKNOWN
        if Precision.FP64 in (self, other):
            return Precision.FP64
        if self.is_full or other.is_full:
            return Precision.FP32
        if Precision.HALF in (self, other):
            return Precision.UNKNOWN  # HALF with BF16 is bf16 or fp32, depending on the run
        return Precision.FP32  # bf16 with fp16


class Kind(enum.Enum):
    ANY = "any"  # nothing known about what it is
    TENSOR = "tensor"
    MODULE = "module"  # an nn.Module (or a model object standing for one)
    PARAMS = "params"  # parameters of a module, in any container shape
    DTYPE = "dtype"
    CONST = "const"  # a Python literal: str, int, float, bool, None
    NAME = "name"  # an imported or well-known dotted name (torch.float16, F.log_softmax, ...)
    AUTOCAST = "autocast"  # an autocast context object
    SCALER = "scaler"
    OPTIMIZER = "optimizer"
    SCHEDULER = "scheduler"  # a learning-rate scheduler stepped once per optimizer step (or epoch)
    FUNCTION = "function"  # a function defined in the linted code
    CLASS = "class"  # a class defined in the linted code
    INSTANCE = "instance"  # an instance of a class defined in the linted code
    DICT = "dict"  # a dict literal with known string keys
    IMPORT = "import"  # a name imported from a linted file, not read yet: (path, name, fallback)


@dataclass(frozen=True)
class Origin:
    """Where low precision came from: `subject` was made half by `how` at `node` of `path`."""

    subject: str
    how: str
    path: str
    node: cst.CSTNode


@dataclass(frozen=True)
class Region:
    """An autocast region: its device, its dtype, and whether it is enabled.

    `device` is "cuda", "cpu", another device type, or None when unresolvable. `enabled` is None when it
    depends on a runtime condition (`enabled=args.amp`).
    """

    device: str | None
    precision: Precision
    enabled: bool | None
    path: str
    node: cst.CSTNode
    # The dtype the region has in a non-default configuration, and the condition (as written) that
    # holds by default: `autocast(dtype=dtype)` after `dtype = torch.bfloat16 if args.dtype ==
    # "bfloat16" else torch.float16`.
    otherwise: tuple[Precision, str] | None = None

    def describe(self) -> str:
        device = self.device or "unknown-device"
        return f"{device} {self.precision.value} autocast"


@dataclass(frozen=True)
class Value:
    kind: Kind = Kind.ANY
    precision: Precision = Precision.UNKNOWN
    origin: Origin | None = None
    # The autocast region the value was computed under, kept after the region ends.
    region: Region | None = None
    # A loss multiplied by an enabled-or-conditional loss scaler (`scaler.scale(loss)`).
    scaled: bool = False
    # The last op that produced a tensor ("softmax", "logsumexp"), for rules about op chains.
    op: str | None = None
    # Kind.NAME: the dotted name; Kind.CONST: the literal; FUNCTION/CLASS/INSTANCE: a `Definition`;
    # OPTIMIZER: its construction; SCHEDULER: the construction of the optimizer it schedules, if tracked.
    payload: object = None
    # Kind.DICT: known items; Kind.INSTANCE / Kind.OPTIMIZER: attributes / construction facts.
    items: tuple[tuple[str, Value], ...] = ()
    # Kind.MODULE and Kind.PARAMS: the call that created the module (its identity across casts);
    # Kind.OPTIMIZER: the identity of the module whose parameters it updates.
    identity: object = None
    # What the value is when a condition that holds by default does not (a non-default option),
    # and that condition as written: set where a conditional expression on a known test is folded.
    otherwise: tuple[Value, str] | None = None

    def __hash__(self) -> int:
        # Every call of the analysed code hashes its arguments into a memo key, and values nest
        # (items, attributes, alternatives): each value's hash is computed once (it is frozen).
        known = self.__dict__.get("_hash")
        if known is None:
            known = hash(_value_fields(self))
            object.__setattr__(self, "_hash", known)
        return cast(int, known)

    def with_(self, **changes: Unpack[_ValueFields]) -> Value:
        return replace(self, **changes)

    def item(self, key: str) -> Value | None:
        for name, value in self.items:
            if name == key:
                return value
        return None

    @property
    def name(self) -> str | None:
        # A NAME's payload is always its dotted name (see `payload`).
        return cast(str, self.payload) if self.kind is Kind.NAME else None

    @property
    def const(self) -> object:
        return self.payload if self.kind is Kind.CONST else None


_value_fields = operator.attrgetter(*(field.name for field in fields(Value)))


class _ValueFields(TypedDict, total=False):
    """`Value`'s fields, as `Value.with_` takes them."""

    kind: Kind
    precision: Precision
    origin: Origin | None
    region: Region | None
    scaled: bool
    op: str | None
    payload: object
    items: tuple[tuple[str, Value], ...]
    identity: object
    otherwise: tuple[Value, str] | None


UNKNOWN = Value()


def const(value: object) -> Value:
    return Value(kind=Kind.CONST, payload=value)


class _SomeNumber:
    """The payload of a Python number whose value is not known (`math.sqrt(d_k)`, `len(batch)`)."""

    def __repr__(self) -> str:
        return "a Python number"


# Combined with a tensor, a Python number keeps the tensor's dtype, whatever its value.
NUMBER = const(_SomeNumber())


def dotted(name: str) -> Value:
    return Value(kind=Kind.NAME, payload=name)


def join(left: Value, right: Value) -> Value:
    """Merge two paths' values: agree where they agree, forget where they don't (precision first)."""
    if left == right:
        return left
    if left.kind is not right.kind:
        for params, other in ((left, right), (right, left)):
            if params.kind is Kind.PARAMS and other.kind is Kind.ANY and other.payload == ():
                # A list one path fills with parameters and the other leaves empty (`if
                # p.requires_grad: decay.append(p)` in a loop): some of those parameters.
                return selected(params)
        # An autocast object on one path and nothing on the other (`nullcontext() if ... else autocast(...)`)
        # is a region that may or may not be active. Autocast objects are the only values holding a Region.
        for maybe in (left, right):
            if isinstance(maybe.payload, Region):
                return maybe.with_(payload=replace(maybe.payload, enabled=None))
        return UNKNOWN
    if left.kind is Kind.CLASS and left.payload != right.payload and None not in (left.payload, right.payload):
        return _keeping(Value(Kind.CLASS), [left, right]) or UNKNOWN  # `A if flag else B`: either class
    if left.kind is Kind.FUNCTION and None not in (left.payload, right.payload) and left.payload != right.payload:
        # `loss_fn = self._cross_device_loss if flag else self._in_batch_loss`: either function
        return _keeping(Value(Kind.FUNCTION), [left, right]) or UNKNOWN
    if left.kind in (Kind.IMPORT, Kind.FUNCTION, Kind.CLASS, Kind.NAME) and left.payload != right.payload:
        return UNKNOWN  # two different things by the same name (`try: import a / except: import b`)
    if left.kind is Kind.CONST:
        return Value(kind=Kind.CONST, payload=_choices(left.payload) | _choices(right.payload))
    precision = left.precision.join(right.precision)
    if left.kind is Kind.DTYPE:
        return Value(kind=Kind.DTYPE, precision=precision)
    merged = Value(
        kind=left.kind,
        precision=precision,
        origin=left.origin if precision.is_low else None,  # both are low then, and each has an origin
        region=_joined_region(left.region, right.region),
        scaled=left.scaled and right.scaled,
        op=left.op if left.op == right.op else _joined_op(left, right, precision),
        identity=left.identity if left.identity is right.identity else None,
        payload=left.payload if left.payload == right.payload else _joined_payload(left.payload, right.payload),
        items=_join_items(left.items, right.items),
    )
    if left.kind is Kind.DICT and {key for key, _ in left.items} != {key for key, _ in right.items}:
        return _keeping(merged, [left, right]) or merged.with_(payload=None)
    return merged


def _joined_payload(left: object, right: object) -> object:
    """Two paths' different payloads: none, unless a path's model decides its logits' dtype itself
    (distillm-2's trainer wraps the model it is given in PEFT on one path): then the joined model's
    logits are of unknown dtype, not its weights'."""
    return UnknownLogits() if isinstance(left, OwnLogits) or isinstance(right, OwnLogits) else None


@dataclass(frozen=True)
class Owners:
    """The identity of parameters gathered from several modules (sd-scripts' param groups of a U-Net
    and its text encoders): an optimizer over them updates each module's weights."""

    modules: frozenset[object]


def owners(identity: object) -> frozenset[object]:
    """The modules whose parameters a collection (or an optimizer) of `identity` holds (none known
    for None)."""
    if isinstance(identity, Owners):
        return identity.modules
    return frozenset() if identity is None else frozenset({identity})


class OwnLogits:
    """The base of the payloads of models whose own forward decides the dtype of their logits
    whatever their weights' (`causal_lm`: a Transformers class that upcasts them, or one of a family
    not told under a transformers where the common ones do)."""


@dataclass(frozen=True)
class UnknownLogits(OwnLogits):
    """The payload of a model whose logits are of unknown dtype: loaded by an Auto class from a
    checkpoint of a family not told under a pinned transformers in which the common families upcast
    their logits and the others do not, or such a model on one path and another model on another."""


@dataclass(frozen=True)
class Alternatives:
    """The payload of a value that is one of several, each whole, where paths meet: a dict whose
    paths hold different keys (`if bf16: ds_config["bf16"] = {...} else: ds_config["fp16"] = {...}`),
    for a reader that judges each (a 16-bit engine on every path is half); a class of the linted
    code picked by branches (`trainer_cls = A if use_vllm else B`), and the instance it builds, for
    a call that runs each."""

    values: tuple[Value, ...]


# At most this many alternatives are kept (an elif chain of configs or classes); more are forgotten.
MAX_ALTERNATIVES = 8


def alternatives(value: Value) -> tuple[Value, ...]:
    """The values `value` may be, one per path (itself, when one)."""
    return value.payload.values if isinstance(value.payload, Alternatives) else (value,)


def one_of(values: list[Value]) -> Value:
    """Values of several paths joined, each kept whole where they differ (`Alternatives`)."""
    joined = values[0]
    for other in values[1:]:
        joined = join(joined, other)
    return _keeping(joined, values) or joined.with_(payload=None)


def _keeping(joined: Value, values: list[Value]) -> Value | None:
    """`joined` holding each of `values` (`Alternatives`); itself when they are one; None when they
    are too many to keep."""
    each: list[Value] = []
    for value in values:
        for choice in alternatives(value):
            if choice not in each:
                each.append(choice)
    if len(each) < 2:
        return joined
    return joined.with_(payload=Alternatives(tuple(each))) if len(each) <= MAX_ALTERNATIVES else None


def _joined_region(left: Region | None, right: Region | None) -> Region | None:
    """The autocast region a value of both paths was computed in. Two regions alike (one per
    branch, each around its own forward) are the first: the backward after the branches is
    reached from either."""
    if left is None or right is None:
        return None
    alike = (left.device, left.precision, left.enabled) == (right.device, right.precision, right.enabled)
    return left if alike else None


def _join_items(
    left: tuple[tuple[str, Value], ...], right: tuple[tuple[str, Value], ...]
) -> tuple[tuple[str, Value], ...]:
    """The items (attributes, dict keys) both paths hold, each joined: a model built by either of
    two branches still holds the bf16 head both build. Parameters pooled under keys not known on one
    path only (`if "mlp" in k: params[k] = nn.Parameter(...)` in a loop) are some of those parameters."""
    if left == right:
        return left
    mine, others = dict(left), dict(right)
    joined = tuple((key, join(value, others[key])) for key, value in left if key in others)
    if (ANY_KEY in mine) != (ANY_KEY in others):
        return (*joined, (ANY_KEY, mine.get(ANY_KEY) or others[ANY_KEY]))
    return joined


def is_none(value: Value) -> bool:
    """The constant None."""
    return value.kind is Kind.CONST and value.payload is None


# The item of a dict holding what was stored under keys not known (`Kind.DICT`'s items).
ANY_KEY = "<any key>"
# `Value.op` of a comparison whose outcome is not known: a Python bool or a bool tensor (a mask),
# which scales a floating tensor without promoting it (`logits * mask.unsqueeze(-1)`).
BOOLEAN = "boolean"
# `Value.op` of a None known to stand for something absent, false where tested: an argparse option
# not given, an accelerator's DeepSpeed plugin under a launch configuration without DeepSpeed.
NOT_GIVEN = "an option not given"
# The item of a method read from an instance (`Kind.FUNCTION`'s items) holding that instance.
BOUND_SELF = "<self>"


def group_params(element: Value) -> Value | None:
    """A param group (`{"params": decay, "weight_decay": 0.1}`) stands for its parameters; any other
    element for itself."""
    return element.item("params") if element.kind is Kind.DICT else element


def _joined_op(left: Value, right: Value, precision: Precision) -> str | None:
    """The marker of half models (or parameters) that two paths leave marked differently (one adds
    fp32 adapters or casts the trainable ones back, the other does not): half in part (`MIXED`),
    which of their parameters are trained not told."""
    if left.kind in (Kind.MODULE, Kind.PARAMS) and precision.is_low:
        return MIXED
    return None


def _choices(payload: object) -> frozenset:
    """A constant is one choice; a joined constant (`"bf16" if x else "fp16"`) is a set of them."""
    return payload if isinstance(payload, frozenset) else frozenset([payload])


def is_tensor_like(value: Value) -> bool:
    return value.kind is Kind.TENSOR or (value.kind is Kind.ANY and value.precision is not Precision.UNKNOWN)


def promote(left: Value, right: Value) -> Value:
    """Binary op between a tensor and something: Python scalars keep the tensor's precision."""
    tensor, other = (left, right) if is_tensor_like(left) else (right, left)
    region = left.region or right.region
    scaled = left.scaled or right.scaled
    if not is_tensor_like(tensor):
        return Value(Kind.TENSOR, region=region, scaled=scaled) if region or scaled else UNKNOWN
    if other.kind is Kind.CONST or other.op == BOOLEAN:
        precision = tensor.precision
    elif is_tensor_like(other):
        precision = tensor.precision.promote(other.precision)
    else:
        precision = Precision.UNKNOWN
    origin = tensor.origin if precision.is_low else None  # `other` is a number or of the same dtype then
    return Value(Kind.TENSOR, precision, origin=origin, region=region, scaled=scaled)


def is_tuple(value: Value) -> bool:
    """A tuple (or list) of values: `return logits, values`, `[a, b]`."""
    return value.kind is Kind.ANY and isinstance(value.payload, tuple)


def holds_tuple(value: Value) -> bool:
    """A tuple on some paths (`return loss, logits` in training, `return logits` in eval)."""
    return isinstance(value.payload, Alternatives) and any(is_tuple(each) for each in alternatives(value))


def matmul(left: Value, right: Value) -> Value:
    """`a @ b`, `torch.bmm(a, b)`: matmul takes operands of one dtype (outside autocast another raises),
    so one of known precision gives the product's, the other's unknown (`image_features @
    text_features.half().t()`)."""
    result = promote(left, right)
    known = [value for value in (left, right) if is_tensor_like(value) and value.precision is not Precision.UNKNOWN]
    if len(known) != 1 or result.kind is not Kind.TENSOR:
        return result
    precision = known[0].precision
    return result.with_(precision=precision, origin=known[0].origin if precision.is_low else None)


def selected(params: Value) -> Value:
    """Some of `params`, chosen by a function (`filter(...)`; a comprehension's filter is kept, see
    `selections.chosen`): parameters all half stay half; of a mixed model (`MIXED`: a half submodule
    among fp32 ones, a frozen bf16 base under fp32 adapters) the chosen ones may all be fp32."""
    if is_mixed(params):
        return params.with_(precision=Precision.UNKNOWN, origin=None, op=None)
    return params


# `Value.op` of the parameters of a module holding half and other submodules.
MIXED = "mixed parameters"
# `Value.op` of a module cast half but for its normalization layers (BatchNorm kept fp32 by a loop
# over its submodules): half in part, its trainable parameters holding the half weights.
HALF_BUT_NORMS = "half but its normalization layers"


# `Value.op` of parameters half in part whose half ones are all trainable: a PEFT model's copies of
# its modules to save beside its fp32 adapters, over a frozen half base.
HALF_TRAINABLE = "half among its trainable parameters"


def is_mixed(value: Value) -> bool:
    """A module (or its parameters) half in part."""
    return value.op in (MIXED, HALF_BUT_NORMS, HALF_TRAINABLE)


def recast(module: Value, cast: Value) -> Value:
    """`module` after a cast of itself (`self.to(dtype)`, `self.half()`, a loop over `self.modules()`
    in its `__init__`), `cast` being what the cast made of it: its submodules at any depth in that
    precision, and the parameter lists it holds of them (`self.lora_layers =
    list(self.transformer.parameters())`), which the cast converts in place with their module."""
    if is_mixed(cast):
        # Its submodules as the loop that cast it by class left them (none where it could not tell).
        return module.with_(precision=cast.precision, origin=cast.origin, op=cast.op, items=cast.items)
    owners = [item.identity for _, item in module.items if item.kind is Kind.MODULE and item.identity is not None]

    def cast_item(item: Value) -> Value:
        if item.kind is Kind.MODULE:
            return recast(item, cast)
        if item.kind is Kind.PARAMS and any(item.identity == owner for owner in owners):
            return item.with_(precision=cast.precision, origin=cast.origin, op=None)
        return item

    items = tuple((name, cast_item(item)) for name, item in module.items)
    op = None if is_mixed(module) else module.op  # a module half in part, cast whole
    return module.with_(precision=cast.precision, origin=cast.origin, op=op, items=items)


# `Value.op` of `nn.Parameter(tensor)`: a weight of its tensor's dtype (a learned prompt, a soft token),
# marked so that a list of them handed to an optimizer is a parameter list (`torch_api.PARAMETER_CLASSES`).
PARAMETER_OP = "nn.Parameter"


def half_submodule(module: Value, skipping: frozenset[str] = frozenset()) -> Value | None:
    """A submodule a module of the linted code holds (`self.out_head = nn.Linear(..., dtype=cfg["dtype"])`,
    at any depth) that is half, or a half parameter it holds (CoOp's learned prompt, `self.ctx =
    nn.Parameter(ctx_vectors)` in the dtype of an fp16 CLIP): its parameters are among the module's,
    so an optimizer over them updates half weights. Submodules of an op in `skipping` (PEFT models,
    whose trainable parameters are not their base's) are left to the caller."""
    pending = [item for _, item in module.items]
    while pending:
        item = pending.pop()
        if item.op in skipping:
            continue
        if item.kind is Kind.MODULE:
            if item.precision.is_low:
                return item
            pending.extend(sub for _, sub in item.items)
        elif item.op == PARAMETER_OP and item.precision.is_low:
            return item
    return None
