"""Launchpad programs (google-deepmind/launchpad) in the precision model: a node runs an object of the
linted code in a process of its own. `lp.PyClassNode(constructor, *args, **kwargs)` "instantiates a
Python object and runs its run() method (if provided)" (launchpad/nodes/python/node.py, read through
the search tool's code index); `lp.CourierNode` derives from it and also serves the instance's methods
to other nodes. oat (sail-sg/oat, `oat/interface.py`) starts its learners only this way:
`lp.PyClassNode(learner_cls, world_size, rank, ..., args, actors, ipc_server)`, then `lp.launch`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import Context
from mplint.analysis.summaries import Definition
from mplint.analysis.values import UNKNOWN, Kind, Value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

NODES = frozenset({"launchpad.PyClassNode", "launchpad.CourierNode"})


def node(self: Interpreter, call: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`lp.PyClassNode(cls, *args, **kwargs)` of a linted class: the instance, built and run."""
    constructor = args[0] if args else UNKNOWN
    if constructor.kind is not Kind.CLASS or not isinstance(constructor.payload, Definition):
        return UNKNOWN
    instance = self.construct(call, ctx, constructor.payload, args[1:], kwargs)
    run = constructor.payload.method("run")
    if run is not None:
        self.call_definition(run, [], {}, ctx.region, receiver=instance)
    return instance
