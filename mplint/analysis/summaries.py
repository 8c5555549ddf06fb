"""Functions and classes of the linted code, and the memo that makes calls into them cheap.

A call to a function defined in the linted files (in the same file or another one of the run) is
analysed *in the caller's context*: its parameters bound to the caller's argument values and the
caller's autocast region still active (autocast is dynamically scoped). The result is memoised
per (function, arguments, region), which is the function's summary for that context. Depth is
bounded (MAX_CALL_DEPTH), recursion with changing arguments unrolls within that bound, and a call
that is already being evaluated with the same arguments falls back to "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.values import Region, Value

if TYPE_CHECKING:
    from mplint.analysis.flow import Scope

MAX_CALL_DEPTH = 8
MAX_CONTEXTS_PER_FUNCTION = 12


@dataclass(frozen=True, eq=False)
class Definition:
    """A `def` or `class` of the linted code, with the scope it was defined in (for globals/closures)."""

    node: cst.FunctionDef | cst.ClassDef
    path: str
    scope: Scope = field(repr=False)
    # Methods: the class they belong to.
    owner: Definition | None = None
    # An autocast decorator (`@torch.autocast("cuda")`) applies its region to every call.
    region: Region | None = None
    # `@torch.no_grad()` / `@torch.inference_mode()`: nothing computed in it reaches backward.
    no_grad: bool = False
    # Classes: whether they are nn.Modules (by their bases), and their methods by name.
    is_module: bool = False
    # Classes: whether they derive from a torch optimizer (a project's own AdamW variant, Muon).
    is_optimizer: bool = False
    methods: dict[str, Definition] = field(default_factory=dict, repr=False)
    # Classes: what their body binds to constants (dataclass field defaults, class attributes).
    constants: dict[str, Value] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.node.name.value

    def method(self, name: str) -> Definition | None:
        return self.methods.get(name)


CallKey = tuple[Definition, tuple[Value, ...], tuple[tuple[str, Value], ...], Region | None, Value | None]


@dataclass
class CallMemo:
    """Summaries computed so far, and the calls being computed (to cut recursion)."""

    # Per call: what it returns, and what it writes to `self.<attr>`.
    results: dict[CallKey, tuple[Value, dict[str, Value]]] = field(default_factory=dict)
    in_progress: list[CallKey] = field(default_factory=list)
    contexts: dict[Definition, int] = field(default_factory=dict)

    def admits(self, key: CallKey) -> bool:
        """Whether a call may be evaluated now: not past the depth bound, and not the very call
        (same function, arguments and region) being evaluated already. Recursion with changing
        arguments (`unroll(x, depth - 1)`) unrolls up to the depth bound."""
        definition = key[0]
        if len(self.in_progress) >= MAX_CALL_DEPTH or key in self.in_progress:
            return False
        return self.contexts.get(definition, 0) < MAX_CONTEXTS_PER_FUNCTION
