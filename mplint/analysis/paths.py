"""Which loss-scaling calls happen on each path through a training step, in which order.

The GradScaler lifecycle rules (MP101-MP105) ask ordering questions the precision model does not
answer: "is `unscale_` called between the scaled backward and this clip on every path?", "can an
iteration end after `scaler.step` without `scaler.update()`?". This module answers them with a small
structured walk over each function body (and the module body): statements in order, both arms of
an `if`, `continue`/`break`/`return` leaving early, loops run zero, one and two times (so that two
consecutive iterations are visible), and calls into helper functions of the linted code followed
into their bodies. Every path is the sequence of `Event`s met on it.

Two things keep the paths honest. A path remembers the conditions it took, so a second
`if use_amp:` follows the first one's choice (no path scales the loss and then steps the optimizer
unscaled); a condition that mentions a name the loop assigns (`if (step + 1) % accum == 0:`) is
forgotten at the next iteration. And what an event *is* comes from the precision model (`events`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.events import Classifier, Event, EventKind, LoopNode, Path, expression_text
from mplint.tree import TRY_STATEMENTS, Located, Statement, statements, walk

if TYPE_CHECKING:
    from mplint.analysis.model import PrecisionModel
    from mplint.analysis.summaries import Definition

# Paths kept per function before the walk gives up (a rule then stays quiet there).
MAX_PATHS = 512
# How deep the walk follows helper calls.
MAX_INLINE_DEPTH = 3


@dataclass(frozen=True)
class Trace:
    """Every path through one function body (or the module body), as event sequences."""

    paths: tuple[Path, ...]

    def occurrences(self, node: Located) -> Iterator[tuple[Path, int]]:
        """Each (path, index) at which `node`'s event happens."""
        for path in self.paths:
            for index, event in enumerate(path):
                if event.node is node:
                    yield path, index

    def nodes(self, kind: EventKind) -> list[Located]:
        """The distinct nodes of `kind`'s events, in the order the walk first met them."""
        seen: dict[Located, None] = {}
        for path in self.paths:
            for event in path:
                if event.kind is kind:
                    seen.setdefault(event.node)
        return list(seen)

    def file_of(self, node: Located) -> str | None:
        """The file `node`'s event lies in: a helper's may be another file's (None: the walked file)."""
        return next((event.file for path in self.paths for event in path if event.node is node), None)

    def training_loops(self) -> frozenset[Located]:
        """Loops whose iterations run a scaled backward: a training step is one of their iterations."""
        return frozenset(
            loop
            for path in self.paths
            for event in path
            if event.kind is EventKind.SCALED_BACKWARD
            for loop in event.loops
        )


def last_backward(path: Path, index: int) -> int | None:
    """The index of the latest backward (scaled or not) before `index` on `path`."""
    for position in range(index - 1, -1, -1):
        if path[position].kind in (EventKind.SCALED_BACKWARD, EventKind.BACKWARD):
            return position
    return None


def between(path: Path, start: int, end: int, kind: EventKind) -> list[Event]:
    return [event for event in path[start + 1 : end] if event.kind is kind]


def unscaled_between(path: Path, start: int, end: int, optimizer: object = None) -> bool:
    """Whether the gradients of the scaled backward at `start` are unscaled before `end`: by
    `scaler.unscale_(...)` (of `optimizer`, when one is given), or by the end of the loss-scaling
    context the backward ran in (apex's `amp.scale_loss`, which unscales every optimizer it was given)."""
    return any(
        event.kind is EventKind.SCALING_CONTEXT_EXIT
        or (event.kind is EventKind.UNSCALE and (optimizer is None or event.optimizer == optimizer))
        for event in path[start + 1 : end]
    )


def traces(module: cst.Module, precision: PrecisionModel) -> tuple[Trace, ...]:
    """Every function's (and the module body's) trace; computed once per file for all rules."""
    if _LAST and _LAST[0][0] is module and _LAST[0][1] is precision:
        return _LAST[0][2]
    classifier = Classifier(module, precision)
    found = []
    for body in _bodies(module):
        if not classifier.reaches_scaler(body):
            continue  # every rule of this walk needs a loss-scaler call on the path
        walker = _Walker(classifier)
        try:
            paths = walker.function(body)
        except _TooComplex:
            continue
        if any(paths):
            found.append(Trace(tuple(sorted(paths, key=walker.path_order))))
    result = tuple(found)
    _LAST[:] = [(module, precision, result)]
    return result


# The rules of one batched visit ask about the same file in turn: remember the last file's traces.
_LAST: list[tuple[cst.Module, PrecisionModel, tuple[Trace, ...]]] = []


class _TooComplex(Exception):
    pass


def _bodies(module: cst.Module) -> Iterator[Sequence[Statement]]:
    yield statements(module)
    for node in walk(module, _may_hold_definitions):
        if type(node) is cst.FunctionDef:
            yield statements(node.body)


def _may_hold_definitions(node: cst.CSTNode) -> bool:
    return type(node) in _DEFINITION_HOLDERS


# Where a `def` can be: blocks of statements and the compound statements that own them (never in an
# expression or a one-line statement: a lambda is no definition).
_DEFINITION_HOLDERS = frozenset(
    {
        cst.Module,
        cst.IndentedBlock,
        cst.FunctionDef,
        cst.ClassDef,
        cst.If,
        cst.Else,
        cst.For,
        cst.While,
        cst.With,
        cst.Try,
        cst.TryStar,
        cst.ExceptHandler,
        cst.ExceptStarHandler,
        cst.Finally,
        cst.Match,
        cst.MatchCase,
    }
)


@dataclass(frozen=True)
class _State:
    """One path so far: its events, and the conditions it took."""

    events: Path = ()
    decisions: frozenset[_Decision] = frozenset()


@dataclass(frozen=True)
class _Decision:
    test: str  # the condition's source
    truth: bool
    names: frozenset[str]  # the identifiers it mentions

    def negated(self) -> _Decision:
        return replace(self, truth=not self.truth)


@dataclass
class _Exits:
    """Paths that leave a loop iteration (`continue`/`break`) or the function (`return`) early."""

    continues: set[_State] = field(default_factory=set)
    breaks: set[_State] = field(default_factory=set)


@dataclass(frozen=True)
class _Place:
    loops: tuple[LoopNode, ...] = ()
    guarded: bool = False
    # Names assigned in the innermost loop: conditions on them change from one iteration to the next.
    varying: frozenset[str] = frozenset()
    # Inside an `if` whose test reads whether the loss scaler skipped the step.
    checks_skip: bool = False


class _Walker:
    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        self.inlining: list[Definition] = []
        self.returns: set[_State] = set()  # paths that returned from the function being walked
        self.file: str | None = None  # the file of the helper being walked (None: the walked file)
        # Event nodes in the order the walk first met them: source order, a helper's at its call.
        self.met: dict[Located, int] = {}

    def function(self, body: Sequence[Statement]) -> set[Path]:
        states = self.run_function(body, {_State()}, _Place())
        return {state.events for state in states}

    def path_order(self, path: Path) -> tuple[int, tuple[tuple[int, str], ...]]:
        """Shorter paths first, then by where their events are: the walk collects paths in sets, and
        "the first update" a message names must not depend on set order (nor differ between runs)."""
        return len(path), tuple((self.met[event.node], event.kind.value) for event in path)

    def event(self, kind: EventKind, node: Located, scaler: object, optimizer: object, place: _Place) -> Event:
        self.met.setdefault(node, len(self.met))
        return Event(kind, node, scaler, optimizer, place.loops, place.guarded, self.file, place.checks_skip)

    def run_function(self, body: Sequence[Statement], states: set[_State], place: _Place) -> set[_State]:
        saved, self.returns = self.returns, set()
        try:
            return self.block(body, states, place, _Exits()) | self.returns
        finally:
            self.returns = saved

    # ----------------------------------------------------------------------------- statements
    def block(self, body: Sequence[Statement], states: set[_State], place: _Place, exits: _Exits) -> set[_State]:
        for statement in body:
            if not states:
                break
            states = self.statement(statement, states, place, exits)
            if len(states) > MAX_PATHS:
                raise _TooComplex
        return states

    def statement(self, node: Statement, states: set[_State], place: _Place, exits: _Exits) -> set[_State]:
        if isinstance(node, cst.If):
            return self.branch(node, states, place, exits)
        if isinstance(node, (cst.For, cst.While)):
            return self.loop(node, states, place)
        if isinstance(node, cst.With):
            for item in node.items:
                states = self.calls(item.item, states, place)
            states = self.block(statements(node.body), states, place, exits)
            for item in reversed(node.items):  # the innermost context exits first
                if self.classifier.unscales_on_exit(item.item):
                    exited = self.event(EventKind.SCALING_CONTEXT_EXIT, item.item, None, None, place)
                    states = {replace(state, events=(*state.events, exited)) for state in states}
            return states
        if isinstance(node, TRY_STATEMENTS):
            body = self.block(statements(node.body), states, place, exits)
            handled: set[_State] = set()
            for handler in node.handlers:
                handled |= self.block(statements(handler.body), states | body, replace(place, guarded=True), exits)
            body = self.block(statements(node.orelse), body, place, exits)
            return self.block(statements(node.finalbody), body | handled, place, exits)
        if isinstance(node, cst.Match):
            states = self.calls(node.subject, states, place)
            guarded = replace(place, guarded=True)
            out = set(states)
            for case in node.cases:
                out |= self.block(statements(case.body), states, guarded, exits)
            return out
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            return states  # other scopes, walked on their own
        states = self.calls(node, states, place)
        if isinstance(node, cst.Return):
            self.returns.update(states)
            return set()
        if isinstance(node, cst.Raise):
            return set()
        if isinstance(node, cst.Continue):
            exits.continues.update(states)
            return set()
        if isinstance(node, cst.Break):
            exits.breaks.update(states)
            return set()
        return states

    def branch(self, node: cst.If, states: set[_State], place: _Place, exits: _Exits) -> set[_State]:
        states = self.calls(node.test, states, place)
        decision = _condition(node.test)
        taken: set[_State] = set()
        skipped: set[_State] = set()
        for state in states:
            if decision.negated() not in state.decisions:
                taken.add(replace(state, decisions=state.decisions | {decision}))
            if decision not in state.decisions:
                skipped.add(replace(state, decisions=state.decisions | {decision.negated()}))
        guarded = replace(place, guarded=True, checks_skip=place.checks_skip or self.classifier.checks_skip(node.test))
        out = self.block(statements(node.body), taken, guarded, exits) if taken else set()
        if node.orelse is not None:  # `else:`, or an `elif` (an `if` of its own in the else branch)
            orelse = [node.orelse] if isinstance(node.orelse, cst.If) else statements(node.orelse)
            out |= self.block(orelse, skipped, guarded, exits) if skipped else set()
        else:
            out |= skipped
        return out

    def loop(self, node: LoopNode, states: set[_State], place: _Place) -> set[_State]:
        states = self.calls(node.test if isinstance(node, cst.While) else node.iter, states, place)
        varying = _assigned_names(node)
        inner = _Place((*place.loops, node), False, varying, place.checks_skip)
        exits = _Exits()
        iterated = states
        after = set() if self.runs_at_least_once(node) else set(states)
        if not self.has_events(node):
            return states  # nothing of interest inside: the loop is invisible to the rules
        iteration = self.event(EventKind.ITERATION, node, None, None, inner)
        for _ in range(2):  # zero, one and two iterations
            starts = {
                replace(state, events=(*state.events, iteration), decisions=_forget(state.decisions, varying))
                for state in iterated
            }
            ended = self.block(statements(node.body), starts, inner, exits) | exits.continues
            exits.continues = set()
            iterated = ended
            if not _is_forever(node):
                after |= ended
        after |= exits.breaks
        after = self.block(statements(node.orelse), after, place, _Exits())
        return {replace(state, decisions=_forget(state.decisions, varying)) for state in after}

    # ---------------------------------------------------------------------------------- calls
    def calls(self, node: cst.CSTNode, states: set[_State], place: _Place) -> set[_State]:
        for call in self.classifier.calls_in(node):
            events, callee = self.classifier.classify(call)
            if events:
                added = tuple(self.event(kind, call, scaler, optimizer, place) for kind, scaler, optimizer in events)
                states = {replace(state, events=state.events + added) for state in states}
            elif callee is not None:
                states = self.enter(callee, states, place)
        return states

    def runs_at_least_once(self, loop: LoopNode) -> bool:
        """`while True:`, and a loop whose own code runs a scaled backward: a training loop or its
        micro-batch loop. Its zero-iteration path runs no backward at all, and would hide whatever
        follows from the rules that judge every path (nanoGPT's `optimizer.step()` after its
        `for micro_step in range(gradient_accumulation_steps):`)."""
        return _is_forever(loop) or any(
            kind is EventKind.SCALED_BACKWARD
            for call in self.classifier.calls_in(loop.body)
            for kind, _, _ in self.classifier.classify(call)[0]
        )

    def has_events(self, node: cst.CSTNode) -> bool:
        """Whether any call under `node` is an event or a helper the walk would enter."""
        return any(self.classifier.classify(call) != ([], None) for call in self.classifier.calls_in(node))

    def enter(self, callee: Definition, states: set[_State], place: _Place) -> set[_State]:
        """Follow a helper: its events happen here, as part of the caller's path."""
        if (
            callee in self.inlining
            or len(self.inlining) >= MAX_INLINE_DEPTH
            or not isinstance(callee.node, cst.FunctionDef)
        ):
            return states
        self.inlining.append(callee)
        saved, self.file = self.file, callee.path
        try:
            return self.run_function(statements(callee.function.body), states, place)
        finally:
            self.inlining.pop()
            self.file = saved


def _condition(test: cst.BaseExpression) -> _Decision:
    """A condition taken true: `not use_amp` is `use_amp` taken false."""
    truth = True
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, truth = test.expression, not truth
    return _Decision(expression_text(test), truth, frozenset(_names(test)))


def _forget(decisions: frozenset[_Decision], varying: frozenset[str]) -> frozenset[_Decision]:
    """Drop what a path knew about conditions on names the loop rebinds (they change per iteration)."""
    return frozenset(decision for decision in decisions if not decision.names & varying)


def _names(node: cst.CSTNode) -> set[str]:
    """Every identifier in an expression, attribute names included (`self.step` gives self and step)."""
    names: set[str] = set()
    for child in walk(node):
        if isinstance(child, cst.Name):
            names.add(child.value)
        elif isinstance(child, cst.Attribute):
            names.add(child.attr.value)
    return names


def _assigned_names(loop: LoopNode) -> frozenset[str]:
    """Names a loop rebinds on each iteration: its targets, and what its body assigns (last attribute part)."""
    targets: list[cst.BaseExpression] = [] if isinstance(loop, cst.While) else [loop.target]
    binders = (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr)
    targets += [node.target for node in walk(loop.body) if isinstance(node, binders)]
    names: set[str] = set()
    for target in targets:
        if isinstance(target, cst.Attribute):
            names.add(target.attr.value)
        else:
            names |= _names(target)
    return frozenset(names)


def _is_forever(loop: LoopNode) -> bool:
    """`while True:` runs at least once and leaves only by `break` (or return/raise)."""
    return isinstance(loop, cst.While) and isinstance(loop.test, cst.Name) and loop.test.value == "True"


def boundaries(trace: Trace, event: Event) -> frozenset[Located]:
    """The loops whose next iteration ends `event`'s training step: the training loops around it,
    or, where the trace shows no scaled backward around it, every loop around it."""
    training = trace.training_loops() & frozenset(event.loops)
    return training or frozenset(event.loops)


def same_step_before(path: Path, index: int, stop: frozenset[Located]) -> Path:
    """The events before `index` back to the start of the iteration of a loop in `stop`."""
    start = index
    while start > 0 and path[start - 1].node not in stop:  # only an ITERATION event is at a loop's node
        start -= 1
    return path[start:index]


def same_step_after(path: Path, index: int, stop: frozenset[Located]) -> Path | None:
    """The events after `index` up to the next iteration of a loop in `stop`; None when the path
    ends first (the step may be finished by a caller)."""
    for end in range(index + 1, len(path)):
        if path[end].node in stop:  # the loop's next ITERATION
            return path[index + 1 : end]
    return None
