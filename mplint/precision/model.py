"""The precision model's answers, as the rules ask for them."""

from __future__ import annotations

import ast
from typing import Callable, Optional, Sequence

from mplint.precision.flow import CallFact, Interpreter, LateCast, OperationFact
from mplint.precision.project import ModuleIndex


class PrecisionModel:
    """Facts about the linted files, computed once for all rules by running the interpreter."""

    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter
        self._evaluated: Optional[dict[str, list[ast.expr]]] = None

    def calls(self, node: ast.Call) -> Sequence[CallFact]:
        """Every distinct context in which this call was evaluated (its own function, and each caller's)."""
        return self._interpreter.facts.get(node, ())

    def operations(self, node: ast.BinOp) -> Sequence[OperationFact]:
        """Every distinct context in which this arithmetic operator was evaluated, with its operands."""
        return self._interpreter.operations.get(node, ())

    def casts_after_optimizer(self, node: ast.Call) -> Sequence[LateCast]:
        return self._interpreter.late_casts.get(node, ())

    def evaluated(self, path: str) -> Sequence[ast.expr]:
        """The Call and BinOp nodes of `path` the analysis evaluated, in source order (parents first)."""
        if self._evaluated is None:
            by_path: dict[str, list[ast.expr]] = {}
            for facts in (self._interpreter.facts, self._interpreter.operations):
                for node, seen in facts.items():
                    by_path.setdefault(seen[0].path, []).append(node)
            self._evaluated = {path: sorted(nodes, key=_source_order) for path, nodes in by_path.items()}
        return self._evaluated.get(path, ())

    def entered(self, path: str) -> bool:
        """Whether the analysis ran code of `path` (a root, or a file whose functions it called)."""
        return path in self._interpreter.entered_paths

    def scales_loss(self, path: str) -> bool:
        """Whether the file builds a loss scaler, or a framework that scales the loss for it."""
        return path in self._interpreter.loss_scaling_paths


def _source_order(node: ast.expr) -> tuple[int, int, int, int]:
    """Earlier first; of two nodes starting at one place, the enclosing one (`a.b(c)` in `a.b(c).d()`)."""
    return (node.lineno, node.col_offset, -(node.end_lineno or 0), -(node.end_col_offset or 0))


def analyze(
    roots: dict[str, ast.Module], load: Callable[[str], Optional[ast.Module]], index: ModuleIndex
) -> PrecisionModel:
    """Interpret `roots`; other files of the run (those `index` knows) are parsed through `load`
    only when a root reads a name from them."""
    interpreter = Interpreter(roots, load, index)
    interpreter.run()
    return PrecisionModel(interpreter)
