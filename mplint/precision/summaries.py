"""Functions and classes of the linted code, and the memo that makes calls into them cheap.

A call to a function defined in the linted files (in the same file or another one of the run) is
analysed *in the caller's context*: its parameters bound to the caller's argument values and the
caller's autocast region still active (autocast is dynamically scoped). The result is memoised
per (function, arguments, region), which is the function's summary for that context. Depth is
bounded, and recursion falls back to "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional, Union

import ast

from mplint.precision.values import Region, Value

if TYPE_CHECKING:
    from mplint.precision.flow import Scope

MAX_CALL_DEPTH = 4
MAX_CONTEXTS_PER_FUNCTION = 12


@dataclass(frozen=True, eq=False)
class Definition:
    """A `def` or `class` of the linted code, with the scope it was defined in (for globals/closures)."""

    node: Union[ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef]
    path: str
    scope: "Scope" = field(repr=False)
    # Methods: the class they belong to.
    owner: Optional["Definition"] = None
    # An autocast decorator (`@torch.autocast("cuda")`) applies its region to every call.
    region: Optional[Region] = None
    # `@torch.no_grad()` / `@torch.inference_mode()`: nothing computed in it reaches backward.
    no_grad: bool = False
    # Classes: whether they are nn.Modules (by their bases), and their methods by name.
    is_module: bool = False
    methods: dict[str, "Definition"] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.node.name

    def method(self, name: str) -> Optional["Definition"]:
        return self.methods.get(name)


CallKey = tuple[Definition, tuple[Value, ...], tuple[tuple[str, Value], ...], Optional[Region], Optional[Value]]


@dataclass
class CallMemo:
    """Summaries computed so far, and the calls being computed (to cut recursion)."""

    results: dict[CallKey, Value] = field(default_factory=dict)
    in_progress: list[Definition] = field(default_factory=list)
    contexts: dict[Definition, int] = field(default_factory=dict)

    def admits(self, definition: Definition) -> bool:
        if len(self.in_progress) >= MAX_CALL_DEPTH or definition in self.in_progress:
            return False
        return self.contexts.get(definition, 0) < MAX_CONTEXTS_PER_FUNCTION
