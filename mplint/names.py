"""Which dotted API name an expression spells, from the imports of its file.

Rules about API *names* (a deprecated entry point, a decorator, a base class) need this where
the precision model has no call fact to offer: a bare decorator, a class base, an import
statement. It is scope-blind on purpose: a local name bound to two different targets resolves
to nothing, so a rule built on it stays quiet rather than guessing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import libcst as cst

from mplint.analysis.torch_api import CONVENTIONAL_NAMES
from mplint.tree import dotted_text, walk

ImportStatement = cst.Import | cst.ImportFrom


@dataclass(frozen=True)
class Binding:
    """`local` stands for `target` because of `alias` in `statement`."""

    local: str
    target: str
    statement: ImportStatement
    alias: cst.ImportAlias


@functools.lru_cache(maxsize=4)
def import_table(module: cst.Module) -> ImportTable:
    """The module's import table, built once however many rules ask for it."""
    return ImportTable(module)


class ImportTable:
    """Every import binding of one module, nested ones included."""

    def __init__(self, module: cst.Module) -> None:
        bindings: list[Binding] = []
        for node in walk(module):
            if isinstance(node, (cst.Import, cst.ImportFrom)):
                bindings.extend(_bindings(node))
        self.bindings = tuple(bindings)
        targets: dict[str, set[str]] = {}
        for binding in self.bindings:
            targets.setdefault(binding.local, set()).add(binding.target)
        self._unique = {local: next(iter(found)) for local, found in targets.items() if len(found) == 1}

    def target_of(self, local: str) -> str | None:
        """The dotted name `local` is bound to; conventional names (`torch`, `F`) when never imported."""
        if local in self._unique:
            return self._unique[local]
        if any(binding.local == local for binding in self.bindings):
            return None  # bound to several things: ambiguous
        return CONVENTIONAL_NAMES.get(local)

    def resolve(self, expression: cst.CSTNode) -> str | None:
        """`th.cuda.amp.autocast` -> "torch.cuda.amp.autocast" under `import torch as th`."""
        if isinstance(expression, cst.Name):
            return self.target_of(expression.value)
        if isinstance(expression, cst.Attribute):
            base = self.resolve(expression.value)
            return f"{base}.{expression.attr.value}" if base is not None else None
        return None


def _bindings(node: ImportStatement) -> list[Binding]:
    if isinstance(node.names, cst.ImportStar):
        return []
    module: str | None = None  # `import a.b`; "..a.b" for `from ..a.b import c`
    if isinstance(node, cst.ImportFrom):
        module = "." * len(node.relative) + (dotted_text(node.module) if node.module is not None else "")
    bindings: list[Binding] = []
    for alias in node.names:
        name, local = alias.evaluated_name, alias.evaluated_alias
        if module is not None:  # from module import name
            target = f"{module}{name}" if module.endswith(".") else f"{module}.{name}"
            bindings.append(Binding(local or name, target, node, alias))
        elif local is not None:  # import torch.cuda.amp as amp
            bindings.append(Binding(local, name, node, alias))
        else:  # import torch.cuda.amp binds torch
            head = name.split(".")[0]
            bindings.append(Binding(head, head, node, alias))
    return bindings
