"""What each call of a training step is on a path through it: a backward (scaled or not), a loss
scaler's `unscale_`/`step`/`update`, an optimizer's step, or a clip of the gradients; or a helper
of the linted code the walk enters (`paths`); and the exit of a loss-scaling context manager.

What an event *is* comes from the precision model: a scaler is a value of kind SCALER (or a
receiver that `.scale(...)`s a loss and also `.update()`s, `.step(...)`s or `.unscale_(...)`s:
structural evidence, not a name), a scaled backward is the backward of a value marked `scaled`, an
optimizer a value of kind OPTIMIZER (or what a scaler steps).

A loss scaled by a context manager (`with amp.scale_loss(loss, optimizer) as scaled_loss:
scaled_loss.backward()`, NVIDIA apex) is scaled inside the block, and unscaled when it ends: apex's
`scale_loss` (NVIDIA/apex fab319f, apex/amp/handle.py) yields `loss.float() * loss_scale`, and on
exit, unless `delay_unscale=True`, checks the gradients for inf/NaN, unscales them (into the fp32
master gradients under master weights) and, on an overflow, patches `optimizer.step` to skip once,
"so that `optimizer.step()` can be called". The walk puts a SCALING_CONTEXT_EXIT where the block ends.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.values import Kind, Value
from mplint.tree import Located, Statement, dotted_text, positional_args, statements, walk, walk_post

if TYPE_CHECKING:
    from mplint.analysis.facts import CallFact
    from mplint.analysis.model import PrecisionModel
    from mplint.analysis.summaries import Definition

CLIP_FUNCTIONS = frozenset(
    {
        f"torch.nn.utils{module}.{name}"
        for module in ("", ".clip_grad")
        for name in ("clip_grad_norm_", "clip_grad_norm", "clip_grad_value_")
    }
)
# Methods that clip a wrapped model's gradients with torch's semantics (FSDP, DeepSpeed-free wrappers).
CLIP_METHODS = frozenset({"clip_grad_norm_"})
# Ops whose result depends on the magnitude of the gradient they read (a norm logged, a manual clamp).
GRADIENT_MAGNITUDE_OPS = frozenset(
    {"norm", "vector_norm", "abs", "max", "amax", "clamp", "clamp_", "clip", "clip_", "pow", "sum", "mean", "std"}
)
LoopNode = cst.For | cst.While


# What tells whether `scaler.step(optimizer)` skipped the step: the scale it halved (`get_scale()`,
# torch 2.13 torch/amp/grad_scaler.py), the per-optimizer inf flags it keeps, and accelerate's
# `optimizer_step_was_skipped` / `step_was_skipped` (accelerate/accelerator.py, optimizer.py).
SKIP_QUERIES = frozenset(
    {"get_scale", "_found_inf_per_device", "found_inf_per_device", "optimizer_step_was_skipped", "step_was_skipped"}
)

# Methods whose receiver's role (a scaler, an optimizer) structural evidence infers.
_SCALER_API = frozenset({"scale", "update", "step", "unscale_", "zero_grad"})


class EventKind(enum.Enum):
    ITERATION = "iteration"  # a loop starts an iteration (the node is the loop)
    SCALED_BACKWARD = "scaled backward"
    BACKWARD = "backward"
    UNSCALE = "unscale_"
    SCALER_STEP = "scaler.step"
    UPDATE = "update"
    OPTIMIZER_STEP = "optimizer.step"
    CLIP = "clip"  # clip_grad_norm_/clip_grad_value_, or a computation on a `.grad`
    SCHEDULER_STEP = "scheduler.step"  # a learning-rate scheduler advanced by one
    # A loss-scaling context manager's block ended: the gradients are unscaled and an overflowing
    # step will be skipped (the node is the context manager's call).
    SCALING_CONTEXT_EXIT = "scaling context exit"


# Events of a loss scaler's lifecycle: a path without one is of no interest to any rule here.
_SCALER_EVENTS = frozenset({EventKind.SCALED_BACKWARD, EventKind.UNSCALE, EventKind.SCALER_STEP, EventKind.UPDATE})


@dataclass(frozen=True)
class Event:
    kind: EventKind
    node: Located
    # Identities (a construction call, or the receiver's source text when untracked).
    scaler: object = None
    optimizer: object = None
    # The loops around the event in the walked function (around the call site, for a helper's events).
    loops: tuple[LoopNode, ...] = ()
    # Under an `if` (or `match`) inside its innermost loop's iteration: not run on every iteration.
    guarded: bool = False
    # The file of `node` when the walk met it in a helper (None: the walked file's own code).
    file: str | None = None
    # Under an `if` whose test reads whether the loss scaler skipped the step (see `SKIP_QUERIES`).
    checks_skip: bool = False


Path = tuple[Event, ...]


_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
# Renders a node's code as written (a helper's may be in another file than the one walked).
_CODE = cst.Module([])


def _calls_in(node: cst.CSTNode, *, nested: bool = False) -> list[cst.Call]:
    """Calls in evaluation order (arguments before the call); in nested scopes too when `nested`."""

    def into(child: cst.CSTNode) -> bool:
        return nested or not isinstance(child, _SCOPES)

    return [child for child in walk_post(node, into) if isinstance(child, cst.Call)]


def expression_text(node: cst.CSTNode) -> str:
    """The expression's code (`self.scaler`, `opt[0]`): how an untracked receiver is told apart."""
    return dotted_text(node) or _CODE.code_for_node(node)


def _receiver(call: cst.Call) -> cst.BaseExpression | None:
    return call.func.value if isinstance(call.func, cst.Attribute) else None


def _method(call: cst.Call) -> str | None:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else None


def _first_arg(call: cst.Call) -> cst.BaseExpression | None:
    positional = positional_args(call)
    return positional[0] if positional else None


def _reads_skip(node: cst.CSTNode, names: frozenset[str]) -> bool:
    """Whether an expression reads a skip query or a name (an attribute, by its last part) bound from one."""
    read = names | SKIP_QUERIES
    for child in walk(node):
        if isinstance(child, cst.Attribute) and child.attr.value in read:
            return True
        if isinstance(child, cst.Name) and child.value in read:
            return True
    return False


def _skip_names(module: cst.Module) -> frozenset[str]:
    """Names (and attributes, by their last part) the module binds from a skip query, directly or
    through another such name: what a condition reads when it checks the skip through a flag."""
    assignments: list[tuple[str, cst.BaseExpression]] = []
    for node in walk(module):
        if isinstance(node, cst.Assign):
            for target in node.targets:
                name = _bound_name(target.target)
                if name is not None:
                    assignments.append((name, node.value))
    names: frozenset[str] = frozenset()
    while True:
        found = frozenset(name for name, value in assignments if _reads_skip(value, names))
        if found <= names:
            return names
        names |= found


def _bound_name(target: cst.BaseExpression) -> str | None:
    if isinstance(target, cst.Name):
        return target.value
    return target.attr.value if isinstance(target, cst.Attribute) else None


# apex's `scale_loss(loss, optimizers, loss_id=0, model=None, delay_unscale=False, ...)`.
_DELAY_UNSCALE_INDEX = 4


def _scales_its_loss(fact: CallFact) -> bool:
    """The call returned a loss it scaled itself (not one scaled before it was passed)."""
    return fact.result.scaled and not fact.receiver.scaled and not any(value.scaled for value in fact.args)


def _delays_unscale(fact: CallFact) -> bool:
    """`delay_unscale=True` as written (a condition, unknown, is taken to unscale: precision first)."""
    written = fact.arg(_DELAY_UNSCALE_INDEX, "delay_unscale")
    return written is not None and written.const is True


def _reads_grad(expression: cst.BaseExpression | None) -> bool:
    """`p.grad` or `p.grad.data`."""
    if isinstance(expression, cst.Attribute) and expression.attr.value == "data":
        expression = expression.value
    return isinstance(expression, cst.Attribute) and expression.attr.value == "grad"


class Classifier:
    """What each call of the linted code is, as an event (or a helper the walk enters)."""

    def __init__(self, module: cst.Module, precision: PrecisionModel) -> None:
        self.precision = precision
        self.calls_memo: dict[cst.CSTNode, list[cst.Call]] = {}
        self.scaler_texts, self.optimizer_texts = self._structural_evidence(module)
        self.memo: dict[cst.Call, tuple[list[tuple[EventKind, object, object]], Definition | None]] = {}
        self.unreaching: set[Definition] = set()  # helpers known to reach no loss-scaler event
        self.module = module

    def checks_skip(self, test: cst.BaseExpression) -> bool:
        """Whether a condition reads if the scaler skipped the step: a skip query, or a name bound
        from one (`skip_lr_sched = scale > scaler.get_scale()`, then `if not skip_lr_sched:`)."""
        return _reads_skip(test, self.skip_names)

    @functools.cached_property
    def skip_names(self) -> frozenset[str]:
        return _skip_names(self.module)  # read once, when a walk first meets an `if`

    def unscales_on_exit(self, context: cst.BaseExpression) -> bool:
        """Whether leaving `with context:` unscales the gradients: `context` is a call that scales a
        loss (`amp.scale_loss(loss, optimizer)`: what `as` binds is the scaled loss) and is not told
        to leave them scaled for a later context's exit (apex's `delay_unscale=True`)."""
        if not isinstance(context, cst.Call):
            return False
        return any(_scales_its_loss(fact) and not _delays_unscale(fact) for fact in self.precision.calls(context))

    def calls_in(self, node: cst.CSTNode) -> list[cst.Call]:
        """`_calls_in(node)`, computed once per node: the walk meets a loop body twice per pass."""
        if node not in self.calls_memo:
            self.calls_memo[node] = _calls_in(node)
        return self.calls_memo[node]

    def reaches_scaler(self, body: Sequence[Statement]) -> bool:
        """Whether a call in `body`, or in a helper it calls (however deep), is a loss-scaler event."""
        explored: set[Definition] = set()
        if self._reaches_scaler(body, explored):
            return True
        self.unreaching |= explored  # explored to the end without finding one: none of them reaches one
        return False

    def _reaches_scaler(self, body: Sequence[Statement], explored: set[Definition]) -> bool:
        for statement in body:
            if type(statement) is cst.FunctionDef or type(statement) is cst.ClassDef:
                continue  # defining runs none of its body (the walk skips it too): its callers reach it
            for call in self.calls_in(statement):
                events, callee = self.classify(call)
                if any(kind in _SCALER_EVENTS for kind, _, _ in events):
                    return True
                if events or callee is None or not isinstance(callee.node, cst.FunctionDef):
                    continue
                if callee not in explored and callee not in self.unreaching:
                    explored.add(callee)
                    if self._reaches_scaler(statements(callee.function.body), explored):
                        return True
        return False

    def _structural_evidence(self, module: cst.Module) -> tuple[frozenset[str], frozenset[str]]:
        """Receivers that act as a scaler (they scale a loss and update/step/unscale), and what they step."""
        methods: dict[str, set[str]] = {}
        stepped: dict[str, set[str]] = {}
        zeroed: set[str] = set()
        for call in _calls_in(module, nested=True):
            receiver, method = _receiver(call), _method(call)
            if receiver is None or method not in _SCALER_API:
                continue
            if any(
                fact.receiver.kind in (Kind.TENSOR, Kind.MODULE, Kind.OPTIMIZER) for fact in self.precision.calls(call)
            ):
                continue
            text = expression_text(receiver)
            if method == "scale" and _first_arg(call) is None:
                continue
            methods.setdefault(text, set()).add(method)
            argument = _first_arg(call)
            if method in ("step", "unscale_") and argument is not None:
                stepped.setdefault(text, set()).add(expression_text(argument))
            if method == "zero_grad":
                zeroed.add(text)
        scalers = frozenset(
            text for text, called in methods.items() if "scale" in called and called & {"update", "step", "unscale_"}
        )
        optimizers = frozenset(zeroed | {optimizer for scaler in scalers for optimizer in stepped.get(scaler, ())})
        return scalers, optimizers

    def classify(self, call: cst.Call) -> tuple[list[tuple[EventKind, object, object]], Definition | None]:
        if call not in self.memo:
            facts = self.precision.calls(call)
            callee = next((fact.callee for fact in facts if fact.callee is not None), None)
            self.memo[call] = (self._events(call, facts), callee)
        return self.memo[call]

    def _events(self, call: cst.Call, facts: Sequence[CallFact]) -> list[tuple[EventKind, object, object]]:
        method, receiver = _method(call), _receiver(call)
        if any(fact.function in CLIP_FUNCTIONS for fact in facts):
            return [(EventKind.CLIP, None, None)]
        if method in CLIP_METHODS and any(fact.receiver.kind is Kind.MODULE for fact in facts):
            return [(EventKind.CLIP, None, None)]
        if any(fact.op in GRADIENT_MAGNITUDE_OPS for fact in facts) and (
            _reads_grad(receiver) or _reads_grad(_first_arg(call))
        ):
            return [(EventKind.CLIP, None, None)]
        backward = self._backward(facts)
        if backward is not None:
            return [(backward, None, None)]
        if method is None or receiver is None:
            return []
        scaler = self._scaler(receiver, facts)
        argument = _first_arg(call)
        if scaler is not None:
            optimizer = self._optimizer(argument, [fact.arg(0, "optimizer") for fact in facts]) if argument else None
            kind = {"unscale_": EventKind.UNSCALE, "step": EventKind.SCALER_STEP, "update": EventKind.UPDATE}.get(
                method
            )
            return [(kind, scaler, optimizer)] if kind is not None else []
        if method == "step" and any(fact.receiver.kind is Kind.SCHEDULER for fact in facts):
            schedules = next(fact.receiver.payload for fact in facts if fact.receiver.kind is Kind.SCHEDULER)
            return [(EventKind.SCHEDULER_STEP, None, schedules)]
        if method == "step" and argument is None:
            receivers = [fact.receiver for fact in facts]
            if (
                any(value.kind is Kind.OPTIMIZER for value in receivers)
                or expression_text(receiver) in self.optimizer_texts
            ):
                return [(EventKind.OPTIMIZER_STEP, None, self._optimizer(receiver, receivers))]
        return []

    @staticmethod
    def _backward(facts: Sequence[CallFact]) -> EventKind | None:
        """`loss.backward()` / `torch.autograd.backward(loss)`: scaled when any context saw a scaled loss."""
        roots: list[Value] = []
        for fact in facts:
            if fact.method == "backward" and fact.receiver.kind in (Kind.TENSOR, Kind.ANY):
                roots.append(fact.receiver)
                roots.extend(fact.args[:1])  # accelerator.backward(loss) and the like
            elif fact.function == "torch.autograd.backward":
                roots.extend(value for value in (fact.arg(0, "tensors"),) if value is not None)
        if not roots:
            return None
        return EventKind.SCALED_BACKWARD if any(root.scaled for root in roots) else EventKind.BACKWARD

    def _scaler(self, receiver: cst.BaseExpression, facts: Sequence[CallFact]) -> object:
        for fact in facts:
            if fact.receiver.kind is Kind.SCALER:
                return fact.receiver.identity or expression_text(receiver)
        text = expression_text(receiver)
        return text if text in self.scaler_texts else None

    @staticmethod
    def _optimizer(expression: cst.BaseExpression, values: Sequence[Value | None]) -> object:
        for value in values:
            if value is not None and value.kind is Kind.OPTIMIZER and value.payload is not None:
                return value.payload
        return expression_text(expression)
