"""Which dotted API name an expression spells, from the imports of its file.

Rules about API *names* (a deprecated entry point, a decorator, a base class) need this where
the precision model has no call fact to offer: a bare decorator, a class base, an import
statement. It is scope-blind on purpose: a local name bound to two different targets resolves
to nothing, so a rule built on it stays quiet rather than guessing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from mplint.precision.flow import CONVENTIONAL_NAMES
from mplint.tree import dotted_text, walk

ImportStatement = Union[cst.Import, cst.ImportFrom]


@dataclass(frozen=True)
class Binding:
    """`local` stands for `target` because of `alias` in `statement`."""

    local: str
    target: str
    statement: ImportStatement
    alias: cst.ImportAlias


@functools.lru_cache(maxsize=4)
def import_table(module: cst.Module) -> "ImportTable":
    """The module's import table, built once however many rules ask for it."""
    return ImportTable(module)


class ImportTable:
    """Every import binding of one module, nested ones included."""

    def __init__(self, module: cst.Module) -> None:
        collector = _ImportCollector()
        for node in walk(module):
            if isinstance(node, cst.Import):
                collector.visit_Import(node)
            elif isinstance(node, cst.ImportFrom):
                collector.visit_ImportFrom(node)
        self.bindings = tuple(collector.bindings)
        targets: dict[str, set[str]] = {}
        for binding in self.bindings:
            targets.setdefault(binding.local, set()).add(binding.target)
        self._unique = {local: next(iter(found)) for local, found in targets.items() if len(found) == 1}

    def target_of(self, local: str) -> Optional[str]:
        """The dotted name `local` is bound to; conventional names (`torch`, `F`) when never imported."""
        if local in self._unique:
            return self._unique[local]
        if any(binding.local == local for binding in self.bindings):
            return None  # bound to several things: ambiguous
        return CONVENTIONAL_NAMES.get(local)

    def resolve(self, expression: cst.BaseExpression) -> Optional[str]:
        """`th.cuda.amp.autocast` -> "torch.cuda.amp.autocast" under `import torch as th`."""
        if isinstance(expression, cst.Name):
            return self.target_of(expression.value)
        if isinstance(expression, cst.Attribute):
            base = self.resolve(expression.value)
            return f"{base}.{expression.attr.value}" if base is not None else None
        return None


class _ImportCollector:
    def __init__(self) -> None:
        self.bindings: list[Binding] = []

    def visit_Import(self, node: cst.Import) -> None:
        for alias in node.names:
            name = dotted_text(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.bindings.append(Binding(alias.asname.name.value, name, node, alias))
            else:
                head = name.split(".")[0]
                self.bindings.append(Binding(head, head, node, alias))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if isinstance(node.names, cst.ImportStar):
            return
        module = "." * len(node.relative) + (dotted_text(node.module) if node.module is not None else "")
        for alias in node.names:
            name = dotted_text(alias.name)
            local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
            target = f"{module}.{name}" if not module.endswith(".") else f"{module}{name}"
            self.bindings.append(Binding(local, target, node, alias))
