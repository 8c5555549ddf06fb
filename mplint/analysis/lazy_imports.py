"""Names a package gives on first access rather than binding them (PEP 562): a module `__getattr__(name)`
that imports what a literal table names (verifiers' `_LAZY_IMPORTS = {"GRPOTrainer":
"verifiers.trainers:GRPOTrainer"}`), so that `import verifiers as vf; vf.GRPOTrainer(...)` is the class."""

from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import ModuleState
from mplint.analysis.summaries import Definition
from mplint.analysis.values import Kind, Value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

# PEP 562: the function a module calls for an attribute it does not bind.
MODULE_GETATTR = "__getattr__"


def lazy_attribute(self: Interpreter, state: ModuleState, name: str) -> Value | None:
    """What a package that imports its names on first access (a module `__getattr__(name)` that
    looks the name up in a literal table, verifiers' `_LAZY_IMPORTS = {"GRPOTrainer":
    "verifiers.trainers:GRPOTrainer"}`) gives for `name`: the object the table names, by absolute
    `module:attribute` or `module` (the attribute then being `name`). Imports under `if
    TYPE_CHECKING:` bind the names first, when the package has them."""
    if name == MODULE_GETATTR or not state.binding_statements(MODULE_GETATTR):
        return None  # no getter (most files, and most names read are not theirs): nothing to run
    getter = self.exported(state.path, MODULE_GETATTR)
    if getter is None or getter.kind is not Kind.FUNCTION or not isinstance(getter.payload, Definition):
        return None
    function = getter.payload.function
    if not isinstance(function, cst.FunctionDef) or not function.params.params:
        return None
    for table_name in _tables_read_by(function, function.params.params[0].name.value):
        table = self.exported(state.path, table_name)
        target = table.item(name) if table is not None and table.kind is Kind.DICT else None
        if target is not None and isinstance(target.const, str) and not target.const.startswith("."):
            module, _, attr = target.const.partition(":")
            return self.lookup_dotted(f"{module}.{attr or name}", state.path)
    return None


def _tables_read_by(function: cst.FunctionDef, key: str) -> list[str]:
    """The module-level names `function` subscripts with its parameter `key` (`_LAZY_IMPORTS[name]`)."""
    found = [
        node.value.value
        for node in _subscripts(function)
        if isinstance(node.value, cst.Name)
        and len(node.slice) == 1
        and isinstance(node.slice[0].slice, cst.Index)
        and isinstance(node.slice[0].slice.value, cst.Name)
        and node.slice[0].slice.value.value == key
    ]
    return list(dict.fromkeys(found))


def _subscripts(node: cst.CSTNode) -> list[cst.Subscript]:
    collected: list[cst.Subscript] = []

    class Collector(cst.CSTVisitor):
        def visit_Subscript(self, subscript: cst.Subscript) -> None:
            collected.append(subscript)

    node.visit(Collector())
    return collected
