"""Registries: a dict literal that code of the linted files fills with classes or factories
(`cls._registry[name] = model_cls` in a `register` decorator, `MODELS[name] = cls`) and reads by a
key the run chooses (`cls._registry[model_type](args)`).

What a read gives: the entry of a key the analysis knows; for a key it cannot tell, the function
that reads it runs once per registered key and its results are joined (`call_definition`), so a
factory whose every registered model is built bf16 returns a bf16 model, and one whose entries
disagree returns nothing known. Registrations run where Python runs them: decorated classes of the
registry's own file, and the names the `__init__.py` of its packages import (a package importing
its model files so that their decorators fill the registry).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import Context
from mplint.analysis.values import MIXED, UNKNOWN, Kind, Value, half_submodule, join

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# At most this many registered keys split a function's evaluation, and at most this many runs of
# split functions are made per analysis (each builds a model: a registry of 30 read from 100 places
# would otherwise build 3000).
MAX_SPLIT = 32
MAX_SPLIT_RUNS = 400
# The packages whose imports may register models: the two around the registry, when they import at
# most this many names (reading every name torch/__init__.py imports cost a tenth of a run on torch/).
MAX_PACKAGE_LEVELS = 2
MAX_PACKAGE_IMPORTS = 64


def is_registry(value: Value) -> bool:
    return value.kind is Kind.DICT and isinstance(value.identity, cst.Dict)


def store(self: Interpreter, registry: Value, key: Value, value: Value) -> None:
    """`registry[key] = value` by code of the linted files (`registry` is one: `is_registry`)."""
    assert isinstance(registry.identity, cst.Dict)
    if isinstance(key.const, str):
        self.registered.setdefault(registry.identity, {})[key.const] = value


def read(self: Interpreter, registry: Value, key: Value) -> Value | None:
    """`registry[key]` for a dict literal: the entry of a key code of the linted files registered,
    UNKNOWN while the reading function is to be split over the keys of a table of classes or
    factories, None where a plain dict's item is meant (`dict_item`)."""
    assert isinstance(registry.identity, cst.Dict)
    table = registry.identity
    pinned = self.pins.get(table)
    if pinned is not None:
        return _entries(self, registry).get(pinned, UNKNOWN)  # every read of it in this run alike
    if not registry.items:  # a registry starts empty (`_registry = {}`): what fills it runs first
        settle(self, self.registry_paths.get(table))
    if isinstance(key.const, str):
        return _entries(self, registry).get(key.const) if table in self.registered else None
    if isinstance(key.payload, frozenset):
        return None  # a key of known choices (a joined constant): `dict_item` joins them
    entries = _entries(self, registry)
    if not 0 < len(entries) <= MAX_SPLIT or len(self.frames) < 2 or self.split_runs + len(entries) > MAX_SPLIT_RUNS:
        return None
    if not all(entry.kind in (Kind.CLASS, Kind.FUNCTION) for entry in entries.values()):
        return None  # a table of dtypes or settings: not a registry of constructors
    frame = self.frames[-1]
    if frame.split is None:
        frame.split = (table, tuple(sorted(entries)))
    return UNKNOWN


def _entries(self: Interpreter, registry: Value) -> dict[str, Value]:
    entries = dict(registry.items)
    if isinstance(registry.identity, cst.Dict):
        entries.update(self.registered.get(registry.identity, {}))
    return entries


def settle(self: Interpreter, path: str | None) -> None:
    """Run the registrations Python would have run before the registry defined at `path` is read."""
    if path is None or path in self.settled:
        return
    self.settled.add(path)
    _run_decorated_classes(self, path)
    for level in range(1, min(path.count("/"), MAX_PACKAGE_LEVELS) + 1):  # the packages above, innermost first
        init = self.index.resolve("", path, level)
        package = self.module_state(init) if init is not None and init.endswith("__init__.py") else None
        if package is None or package.path == path:
            continue
        imports = [statement for statement in package.all_statements() if isinstance(statement, cst.ImportFrom)]
        if sum(len(statement.names) for statement in imports if not isinstance(statement.names, cst.ImportStar)) > (
            MAX_PACKAGE_IMPORTS
        ):
            continue  # a library's facade (torch/__init__.py), not a package listing its models
        for statement in imports:
            _import_names(self, statement, package.path)


def _run_decorated_classes(self: Interpreter, path: str) -> None:
    """Run the decorated classes of a file read a name at a time (a file run whole ran them): their
    decorators are what registers them."""
    state = self.module_state(path)
    if state is not None and state.lazy:
        for statement in state.all_statements():
            if isinstance(statement, cst.ClassDef) and statement.decorators and id(statement) not in state.executed:
                state.executed.add(id(statement))
                self.exec_statement(statement, Context(state.scope))


def _import_names(self: Interpreter, node: cst.ImportFrom, importer: str) -> None:
    """Read every name a package's `from module import a, b` imports (running their definitions);
    `from .zoo import *` runs the module whole, its registering decorators with it."""
    from mplint.tree import dotted_text

    module = dotted_text(node.module) if node.module is not None else ""
    source = self.index.resolve(module, importer, len(node.relative)) if module or node.relative else None
    if source is None:
        return
    if isinstance(node.names, cst.ImportStar):
        _run_decorated_classes(self, source)
        return
    for alias in node.names:
        self.exported(source, dotted_text(alias.name))


# The item under which models of several classes joined keep a half submodule each of them holds
# (under names that differ: `lm_head`, `output`); no attribute is spelled so.
HALF_PART = "half submodule"


def joined(outcomes: list[tuple[Value, dict[str, Value]]]) -> tuple[Value, dict[str, Value]]:
    """What the runs of a function over a registry's keys give together: their results joined, and
    the attributes all of them write, joined. Models of different classes that each hold a half
    submodule (a bf16 `lm_head` in one, `output` in another) stay a model half in part (MIXED:
    its outputs' dtype is not told, its parameters include half ones)."""
    result, writes = outcomes[0]
    for other, other_writes in outcomes[1:]:
        result = join(result, other)
        writes = {attr: join(value, other_writes[attr]) for attr, value in writes.items() if attr in other_writes}
    # A half submodule each model holds at any depth (or the model itself, when half).
    halves = [
        (value if value.precision.is_low else half_submodule(value)) if value.kind is Kind.MODULE else None
        for value, _ in outcomes
    ]
    first, *rest = halves
    others = [half for half in rest if half is not None]
    # Every outcome a module holding a half part (the join of modules is a module): of one dtype, or
    # "bf16 or fp16" when a bf16 head is in one model and an fp16 one in another.
    if first is not None and not result.precision.is_low and len(others) == len(rest):
        precision = first.precision
        for half in others:
            precision = precision.join(half.precision)
        if first.origin is not None and len(outcomes) > 1:  # named as one of them
            how = f"{first.origin.how} in each of the {len(outcomes)} models the registry builds, e.g."
            first = first.with_(origin=replace(first.origin, how=how))
        result = result.with_(op=MIXED, items=(*result.items, (HALF_PART, first.with_(precision=precision))))
    return result, writes
