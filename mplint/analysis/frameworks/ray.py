"""Ray actors and tasks in the precision model. A class or function made remote (`@ray.remote`,
`ray.remote(num_gpus=1)(Cls)`) runs in another process, but what it computes is what a direct call
would compute: `Cls.remote(*args)` (also `Cls.options(...).remote(...)`) constructs the actor,
`handle.method.remote(*args)` runs the method on the actor's state (what `init_model` stored is
there for `train`, through any handle of that actor: `[a.init_model.remote(...) for a in
self.actors]`, then the same loop in another method), `task.remote(*args)` runs the function, and
`ray.get(ref)` gives the value back. OpenRLHF-style trainers (Open-Reasoner-Zero) reach their models
and losses only this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.summaries import SELF, Definition, with_stored
from mplint.analysis.values import Kind, Value, alternatives, dotted, join

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

REMOTE = "remote"  # the attribute that dispatches to an actor or a task
OPTIONS = "options"  # `Cls.options(num_gpus=1)`: the same class, scheduled differently
DECORATOR = "ray.remote"
# `ray.get(ref)` / `ray.put(value)`: the object, whichever side of the store it is on.
OBJECT_STORE = frozenset({"ray.get", "ray.put"})


def call_named(function: str, args: list[Value]) -> Value | None:
    """`ray.remote(Cls)` is the class (a decorator factory `ray.remote(num_gpus=1)` is applied to it
    next); `ray.get(ref)` is the value. None for every other name."""
    if function == DECORATOR:
        return args[0] if args else dotted(DECORATOR)
    if function in OBJECT_STORE and args:
        return args[0]
    return None


def is_remote_call(func: cst.BaseExpression) -> bool:
    """`x.remote(...)`: a Ray dispatch, whatever `x` turns out to be."""
    return isinstance(func, cst.Attribute) and func.attr.value == REMOTE


def dispatched(self: Interpreter, base: Value, importer: str) -> Value | None:
    """What `base.remote(...)` runs when `base` is a linted class (`Cls.remote(...)`: it is
    constructed) or function (a task, also named through its module: `tasks.rollout`): `base`
    itself, to be called directly; else None."""
    if base.kind is Kind.NAME and base.name is not None:
        base = self.lookup_dotted(base.name, importer) or base
    if base.kind in (Kind.CLASS, Kind.FUNCTION) and isinstance(base.payload, Definition):
        if base.kind is Kind.FUNCTION or base.payload.method(REMOTE) is None:
            return base
    return None


def is_actor(value: Value, method: str) -> bool:
    """Whether `value.method.remote(...)` runs `method` of a linted class on the instance `value`."""
    return any(
        choice.kind in (Kind.INSTANCE, Kind.MODULE)
        and isinstance(choice.payload, Definition)
        and choice.payload.method(method) is not None
        for choice in alternatives(value)
    )


def actor_state(self: Interpreter, handle: Value) -> Value:
    """The actor `handle` reaches, holding what its methods stored so far through any of its handles
    (an actor lives in its own process: one construction, however many names or lists hold it)."""
    stored = self.actor_states.get(_actor_key(handle))
    return with_stored(handle, stored) if stored else handle


def keep_actor_state(self: Interpreter, handle: Value, writes: dict[str, Value]) -> None:
    """What a method run through `handle` stored on the actor, joined with what another run stored."""
    state = self.actor_states.setdefault(_actor_key(handle), {})
    for attr, value in writes.items():
        if attr != SELF:
            state[attr] = join(state[attr], value) if attr in state else value


def _actor_key(handle: Value) -> tuple[object, object]:
    return handle.payload, handle.identity
