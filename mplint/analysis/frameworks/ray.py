"""Ray actors and tasks in the precision model. A class or function made remote (`@ray.remote`,
`ray.remote(num_gpus=1)(Cls)`) runs in another process, but what it computes is what a direct call
would compute: `Cls.remote(*args)` (also `Cls.options(...).remote(...)`) constructs the actor,
`handle.method.remote(*args)` runs the method on the actor's state (what `init_model` stored is
there for `train`), `task.remote(*args)` runs the function, and `ray.get(ref)` gives the value
back. OpenRLHF-style trainers (Open-Reasoner-Zero) reach their models and losses only this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.summaries import Definition
from mplint.analysis.values import Kind, Value, alternatives, dotted

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
