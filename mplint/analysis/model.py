"""The precision model's answers, as the rules ask for them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import libcst as cst

from mplint.analysis.facts import CallFact, LateCast, OperationFact
from mplint.analysis.interpreter import Interpreter
from mplint.analysis.project import ModuleIndex
from mplint.analysis.scopes import Loaded


class PrecisionModel:
    """Facts about the linted files, computed once for all rules by running the interpreter."""

    def __init__(self, interpreter: Interpreter) -> None:
        self._interpreter = interpreter
        self._evaluated: dict[str, set[cst.BaseExpression]] | None = None

    def calls(self, node: cst.Call) -> Sequence[CallFact]:
        """Every distinct context in which this call was evaluated (its own function, and each caller's)."""
        return self._interpreter.facts.get(node, ())

    def operations(self, node: cst.BinaryOperation) -> Sequence[OperationFact]:
        """Every distinct context in which this arithmetic operator was evaluated, with its operands."""
        return self._interpreter.operations.get(node, ())

    def casts_after_optimizer(self, node: cst.Call) -> Sequence[LateCast]:
        return self._interpreter.late_casts.get(node, ())

    def evaluated(self, path: str) -> Collection[cst.BaseExpression]:
        """The Call and BinaryOperation nodes of `path` the analysis evaluated (in no order)."""
        if self._evaluated is None:
            by_path: dict[str, set[cst.BaseExpression]] = {}
            for facts in (self._interpreter.facts, self._interpreter.operations):
                for node, seen in facts.items():
                    by_path.setdefault(seen[0].path, set()).add(node)
            self._evaluated = by_path
        return self._evaluated.get(path, ())

    def entered(self, path: str) -> bool:
        """Whether the analysis ran code of `path` (a root, or a file whose functions it called)."""
        return path in self._interpreter.entered_paths

    def scales_loss(self, path: str) -> bool:
        """Whether the file builds a loss scaler, or a framework that scales the loss for it."""
        return path in self._interpreter.loss_scaling_paths


def analyze(roots: dict[str, cst.Module], load: Callable[[str], Loaded | None], index: ModuleIndex) -> PrecisionModel:
    """Interpret `roots`; other files of the run (those `index` knows) are parsed through `load`
    only when a root reads a name from them."""
    interpreter = Interpreter(roots, load, index)
    interpreter.run()
    return PrecisionModel(interpreter)
