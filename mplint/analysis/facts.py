"""What the interpreter leaves for the rules: one fact per evaluation of a call, of an arithmetic
operator, and of a module cast to half in place after its optimizer was built. Rules read these
through `model.PrecisionModel`, never the interpreter's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.values import Precision, Region, Value

if TYPE_CHECKING:
    from mplint.analysis.summaries import Definition


@dataclass(frozen=True)
class CallFact:
    """What one evaluation of one call saw."""

    node: cst.Call
    path: str
    function: str | None  # dotted callee name (`torch.nn.functional.log_softmax`), when it is one
    method: str | None  # `receiver.method(...)` on a value that is not a dotted name
    receiver: Value
    args: tuple[Value, ...]
    kwargs: tuple[tuple[str, Value], ...]
    region: Region | None  # the innermost autocast region active at the call
    result: Value
    # The function or method of the linted code the call ran, when it ran one (for per-path rules
    # that follow a training step into its helpers).
    callee: Definition | None = None
    # The module whose forward the call ran, when it called one (`model(input_ids)`, `self.encoder(x)`).
    module: Value | None = None
    # Set when the call was evaluated on a branch the default configuration skips: the condition
    # that takes it, as written ("`args.profile` is true").
    condition: str | None = None
    # The functions being evaluated when the call was, outermost first (`main`, `train`,
    # `log_probs`): how the analysis reached it, for messages. Not part of what the call saw.
    chain: tuple[str, ...] = field(default=(), compare=False)
    # The call that ran each function of `chain` (path and node), where the analysis knows it.
    call_sites: tuple[tuple[str, cst.Call] | None, ...] = field(default=(), compare=False)
    # Evaluated inside a method of an nn.Module class of the linted code (or a function one calls):
    # the model's own computation, not the training code around it.
    in_module: bool = field(default=False, compare=False)

    @property
    def op(self) -> str | None:
        return self.method if self.function is None else api.op_of(self.function)

    def arg(self, index: int | None, keyword: str | None = None) -> Value | None:
        """The value passed as positional `index` or as `keyword`, whichever was used."""
        if keyword is not None:
            for name, value in self.kwargs:
                if name == keyword:
                    return value
        if index is not None and index < len(self.args):
            return self.args[index]
        return None

    def input(self) -> Value | None:
        """The tensor an op works on: the receiver of a method call, else the first argument."""
        return self.receiver if self.method is not None else self.arg(0, "input")


@dataclass(frozen=True)
class OperationFact:
    """What one evaluation of an arithmetic operator (`scores + mask * -1e9`) saw."""

    node: cst.BinaryOperation
    path: str
    left: Value
    right: Value
    result: Value
    condition: str | None = None  # as CallFact's
    chain: tuple[str, ...] = field(default=(), compare=False)  # as CallFact's


Node = TypeVar("Node", cst.Call, cst.BinaryOperation)
Fact = TypeVar("Fact", CallFact, OperationFact)


class _Recorded(list[Fact]):
    """A node's distinct facts, with their set: a node evaluated in a hundred contexts would
    otherwise compare each new fact with every one before it, value by value."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[Fact] = set()


def record(facts: dict[Node, list[Fact]], node: Node, fact: Fact) -> None:
    """Add `fact` to `node`'s distinct facts, those of the default configuration first."""
    found = facts.get(node)
    if found is None:
        found = facts[node] = _Recorded()
    assert isinstance(found, _Recorded), "facts are recorded here only"
    known = len(found.seen)
    found.seen.add(fact)  # hashed once: a fact's values are mostly new
    if len(found.seen) == known:
        return
    if fact.condition is None:
        found.insert(next((index for index, seen in enumerate(found) if seen.condition is not None), len(found)), fact)
    else:
        found.append(fact)


def continues(condition: str | None, path: str | None) -> bool:
    """Whether the path of `condition` is `path` or one taken inside it ("`--fp16` is given and
    `args.full_fp16` is true" continues "`--fp16` is given"); every path continues the default one (None)."""
    return path is None or condition == path or (condition or "").startswith(f"{path} and ")


def conditions_in(condition: str | None) -> int:
    """How many conditions a path takes ("`--fp16` is given and `args.full_fp16` is true": 2)."""
    return 0 if condition is None else 1 + condition.count(" and ")


@dataclass(frozen=True)
class LateCast:
    """A module cast to half in place after an optimizer was built over its parameters, then stepped."""

    cast: cst.Call
    path: str
    optimizer: cst.Call
    optimizer_path: str
    precision: Precision
    condition: str | None = None  # as `CallFact.condition`
    module: object = field(default=None, compare=False)  # the cast module's identity
    # The functions under way at the cast and the calls that ran them (as `CallFact.chain` and
    # `call_sites`): which of the optimizer's facts is the construction this run cast the parameters of.
    chain: tuple[str, ...] = field(default=(), compare=False)
    call_sites: tuple[tuple[str, cst.Call] | None, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ReplicatedCall:
    """A call of a module wrapped in `nn.DataParallel` (`wrapper`, its construction) made inside an
    autocast region: the replicas' threads re-enter autocast with the region's enabled flag only."""

    node: cst.Call
    path: str
    wrapper: cst.Call
    wrapper_path: str
    region: Region
    module: Definition | None  # the wrapped module's class, when it is one of the linted code
    condition: str | None = None
