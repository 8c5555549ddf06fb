"""Which dotted API name an expression spells, from the imports of its file.

Rules about API *names* (a deprecated entry point, a decorator, a base class) need this where
the precision model has no call fact to offer: a bare decorator, a class base, an import
statement. It is scope-blind on purpose: a local name bound to two different targets resolves
to nothing, so a rule built on it stays quiet rather than guessing.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from typing import Optional, Union

from mplint.precision.flow import CONVENTIONAL_NAMES
from mplint.tree import walk

ImportStatement = Union[ast.Import, ast.ImportFrom]


@dataclass(frozen=True)
class Binding:
    """`local` stands for `target` because of `alias` in `statement`."""

    local: str
    target: str
    statement: ImportStatement
    alias: ast.alias


@functools.lru_cache(maxsize=4)
def import_table(module: ast.Module) -> "ImportTable":
    """The module's import table, built once however many rules ask for it."""
    return ImportTable(module)


class ImportTable:
    """Every import binding of one module, nested ones included."""

    def __init__(self, module: ast.Module) -> None:
        bindings: list[Binding] = []
        for node in walk(module):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                bindings.extend(_bindings(node))
        self.bindings = tuple(bindings)
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

    def resolve(self, expression: ast.AST) -> Optional[str]:
        """`th.cuda.amp.autocast` -> "torch.cuda.amp.autocast" under `import torch as th`."""
        if isinstance(expression, ast.Name):
            return self.target_of(expression.id)
        if isinstance(expression, ast.Attribute):
            base = self.resolve(expression.value)
            return f"{base}.{expression.attr}" if base is not None else None
        return None


def _bindings(node: ImportStatement) -> list[Binding]:
    if isinstance(node, ast.Import):
        return [
            Binding(alias.asname, alias.name, node, alias)
            if alias.asname is not None
            else Binding(alias.name.split(".")[0], alias.name.split(".")[0], node, alias)
            for alias in node.names
        ]
    module = "." * (node.level or 0) + (node.module or "")
    return [
        Binding(alias.asname or alias.name, f"{module}{alias.name}" if module.endswith(".") else f"{module}.{alias.name}", node, alias)
        for alias in node.names
        if alias.name != "*"
    ]
