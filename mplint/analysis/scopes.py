"""Where the interpreter keeps what names hold: a `Scope` per module, class body, function or
comprehension evaluation; a `ModuleState` per file of the run (a root run top to bottom, a file it
imports from read a name at a time); the `Context` an evaluation runs in (scope, autocast region,
no_grad); and the `Frame` of one function evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import libcst as cst

from mplint.analysis.facts import LateCast
from mplint.analysis.values import Origin, Precision, Region, Value
from mplint.tree import STAR_IMPORT, TRY_STATEMENTS, Statement, dotted_text, statements, walk

if TYPE_CHECKING:
    from mplint.analysis.summaries import Definition


class Scope:
    """Names bound in one function (or module, or class body) evaluation. Attribute paths that the
    code assigns (`self.model = ...`) are tracked as names too (`"self.model"`)."""

    def __init__(self, module: ModuleState, parent: Scope | None = None) -> None:
        self.module = module
        self.parent = parent
        self.names: dict[str, Value] = {}

    def lookup(self, name: str) -> Value | None:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.names:
                return scope.names[name]
            scope = scope.parent
        return None


class Loaded(NamedTuple):
    """What reading a file of the run gives: its tree; for a file parsed piece by piece, the
    function that parses the top-level statements binding a name, and the one that gives a
    method whose body was left unparsed (`PartialFile.full_function`)."""

    module: cst.Module
    top_level: Callable[[str], list[Statement]] | None = None
    full_function: Callable[[cst.FunctionDef], cst.FunctionDef] | None = None


@dataclass
class ModuleState:
    path: str
    module: cst.Module
    scope: Scope = field(init=False)
    state: str = "pending"  # pending -> running -> done
    # Files a root imports from are not run top to bottom: only the statements that bind the
    # names read from them, each once (reading `Module` from torch/nn/modules/module.py must not
    # execute all of it).
    lazy: bool = False
    # For a file parsed piece by piece: the top-level statements that may bind a name (parsed on
    # demand); None when `module` is the whole file.
    top_level: Callable[[str], list[Statement]] | None = None
    # For such a file: its methods with their bodies (`Loaded.full_function`).
    full_function: Callable[[cst.FunctionDef], cst.FunctionDef] | None = None
    executed: set[int] = field(default_factory=set)
    # What the statements run on demand for a name bound it to (`bindings.exported`).
    bound_on_demand: dict[str, Value] = field(default_factory=dict)
    # The linted files it imports every public name from (`from utils import *`), in import order.
    star_sources: list[str] = field(default_factory=list)
    _bindings: dict[str, list[Statement]] | None = None

    def __post_init__(self) -> None:
        self.scope = Scope(self)

    def top_level_of(self, kind: str) -> list[Statement]:
        """Top-level statements that may be of `kind` (`DECORATED_CLASSES`, `FROM_IMPORTS`): of a file
        parsed piece by piece, only the pieces CPython's tree shows to hold one, parsed now."""
        return self.top_level(kind) if self.top_level is not None else statements(self.module)

    def binding_statements(self, name: str) -> list[Statement]:
        """Top-level statements (also inside top-level if/try) that may bind `name`."""
        if self.top_level is not None:
            if self._bindings is None:
                self._bindings = {}
            if name not in self._bindings:
                self._bindings[name] = _binders(self.top_level(name)).get(name, [])
            return self._bindings[name]
        if self._bindings is None:
            self._bindings = _binders(statements(self.module))
        return self._bindings.get(name, [])


def _binders(top_level: list[Statement]) -> dict[str, list[Statement]]:
    """The statements among `top_level` (and inside its if/try statements) that bind each name."""
    found: dict[str, list[Statement]] = {}
    pending: list[Statement] = list(reversed(top_level))
    while pending:
        statement = pending.pop()
        if isinstance(statement, _BRANCHING_STATEMENTS):
            pending.extend(reversed(_nested_statements(statement)))
            continue
        for bound in _bound_names(statement):
            found.setdefault(bound, []).append(statement)
    return found


@dataclass(frozen=True)
class Context:
    scope: Scope
    region: Region | None = None
    class_body: Definition | None = None  # the class whose body is being executed (its defs are methods)
    no_grad: bool = False  # inside `torch.no_grad()` / `torch.inference_mode()`: nothing reaches backward


@dataclass
class Frame:
    """One function evaluation: what it returns, and in-place casts waiting for an optimizer step."""

    returns: list[Value] = field(default_factory=list)
    pending_casts: list[LateCast] = field(default_factory=list)
    # The autocast region active at each `yield` (what a `@contextmanager` function's `with` opens).
    yielded: list[Region | None] = field(default_factory=list)
    # torch's default dtype at each `yield` (what a `@contextmanager` helper that sets it opens).
    yielded_defaults: list[tuple[Precision, Origin | None]] = field(default_factory=list)
    # A registry read with a key that cannot be told (`cls._registry[model_type]`): the read and
    # the registered keys, for `call_definition` to run the body once per key.
    split: tuple[cst.Dict, tuple[str, ...]] | None = None
    # It read a registry by a key that cannot be told, itself or in a function it called: in a run
    # pinned to a registry's key, what it gives depends on that key.
    keyed: bool = False
    # Configuration tests this run decided by the configuration's value (by the test's text): the
    # value and the `if` that decided it first.
    decided: dict[str, tuple[bool, cst.If]] = field(default_factory=dict)
    # Those of them an `if` naming a dtype or a module change decided (`statements._mentions_precision`).
    decided_with_precision: set[str] = field(default_factory=set)
    # Tests met again after an earlier `if` decided them, whose other branch is read by running the
    # whole body again under it (`call_definition`): by test, the tests that run assumes and
    # whether each holds (the test first).
    reruns: dict[str, tuple[tuple[str, bool], ...]] = field(default_factory=dict)


_BRANCHING_STATEMENTS: tuple[type[cst.If], type[cst.Try], type[cst.TryStar]] = (cst.If, *TRY_STATEMENTS)


def _nested_statements(statement: cst.If | cst.Try | cst.TryStar) -> list[Statement]:
    """The statements directly inside a top-level `if`/`try`, every branch of it (elifs included)."""
    if isinstance(statement, cst.If):
        return [
            *statements(statement.body),
            *(
                _nested_statements(statement.orelse)
                if isinstance(statement.orelse, cst.If)
                else statements(statement.orelse)
            ),
        ]
    handlers = [inner for handler in statement.handlers for inner in statements(handler.body)]
    return [*statements(statement.body), *handlers, *statements(statement.orelse), *statements(statement.finalbody)]


def _bound_names(statement: Statement) -> list[str]:
    """The names a top-level statement may bind (def, class, assignment, import)."""
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return [statement.name.value]
    if isinstance(statement, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
        targets = (
            [target.target for target in statement.targets] if isinstance(statement, cst.Assign) else [statement.target]
        )
        return [node.value for target in targets for node in walk(target) if isinstance(node, cst.Name)]
    if isinstance(statement, cst.Import):
        return [
            dotted_text(alias.asname.name if alias.asname else alias.name).split(".")[0] for alias in statement.names
        ]
    if isinstance(statement, cst.ImportFrom):
        if isinstance(statement.names, cst.ImportStar):
            return [STAR_IMPORT]
        return [dotted_text(alias.asname.name if alias.asname else alias.name) for alias in statement.names]
    return []
