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

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import Context
from mplint.analysis.values import MIXED, UNKNOWN, Kind, Value, half_submodule, join
from mplint.tree import DECORATED_CLASSES, FROM_IMPORTS

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
    if not registry.items:  # a registry starts empty (`_registry = {}`): what fills it runs first
        settle(self, self.registry_paths.get(table))
    if isinstance(key.const, str):
        # A key the analysis knows reads its own entry, also in a run pinned to another key (one
        # split by a read it could not tell, such as one on a branch the configuration skips).
        return _entries(self, registry).get(key.const) if table in self.registered else None
    entries = _entries(self, registry)
    pinned = self.pins.get(table)
    if pinned is None:
        # A run pinned to a key of another registry reads the same key here, where this one holds
        # it: `args = CONFIGS[model_type](...)` then `model = MODELS[model_type](args)`, two tables
        # named by one model type, give the config and the model of that type together.
        pinned = next((choice for choice in self.pins.values() if choice in entries), None)
    if pinned is not None:
        self.frames[-1].keyed = True
        return entries.get(pinned, UNKNOWN)  # every read of it in this run alike
    if isinstance(key.payload, frozenset):
        return None  # a key of known choices (a joined constant): `dict_item` joins them
    if not 0 < len(entries) <= MAX_SPLIT or len(self.frames) < 2 or self.split_runs + len(entries) > MAX_SPLIT_RUNS:
        return None
    if not all(entry.kind in (Kind.CLASS, Kind.FUNCTION) for entry in entries.values()):
        return None  # a table of dtypes or settings: not a registry of constructors
    frame = self.frames[-1]
    frame.keyed = True
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
        imports = [
            statement for statement in package.top_level_of(FROM_IMPORTS) if isinstance(statement, cst.ImportFrom)
        ]
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
        for statement in state.top_level_of(DECORATED_CLASSES):
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
        first = _in_each(first, len(outcomes))  # named as one of them
        result = result.with_(op=MIXED, items=(*result.items, (HALF_PART, first.with_(precision=precision))))
    models = tuple(value for value, _ in outcomes)
    if result.kind is Kind.MODULE and result.payload is None and all(model.kind is Kind.MODULE for model in models):
        result = result.with_(payload=Built(models))
    return result, writes


@dataclass(frozen=True)
class Built:
    """The payload of a model built by a registry read whose key the analysis cannot tell (models of
    several classes joined): the model of each registered key, so that calling it runs each one."""

    models: tuple[Value, ...]


def output(built: Built, run: Callable[[Value], Value]) -> Value:
    """Calling a model of any of the registered keys: each one's output (`run`), joined. The logits of
    every registered model bf16 are bf16 whichever the run picks, named as one of them."""
    outputs = [run(model) for model in built.models]
    result = outputs[0]
    for other in outputs[1:]:
        result = join(result, other)
    items = tuple((name, _in_each(item, len(outputs))) for name, item in result.items)
    return _in_each(result, len(outputs)).with_(items=items)


def _in_each(value: Value, count: int) -> Value:
    if value.origin is None or not value.precision.is_low or count < 2:
        return value
    how = f"{value.origin.how} in each of the {count} models the registry builds, e.g."
    return value.with_(origin=replace(value.origin, how=how))
