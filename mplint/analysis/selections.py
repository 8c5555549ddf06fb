"""Parameters chosen by a filter, and parameters gathered from several places.

`[p for n, p in model.named_parameters() if "norm" in n]` of a model half in part may be all fp32
(its BatchNorm weights): what a filter chooses is unknown. But the filter is kept, written as its
conjuncts, so that the param groups an optimizer is built over can be seen to cover the model
again: `"norm" in n` and `"norm" not in n` together choose every parameter (cifar10-airbench,
the decay / no-decay split of most training scripts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from mplint.analysis.values import (
    HALF_BUT_NORMS,
    HALF_TRAINABLE,
    Kind,
    Owners,
    Precision,
    Value,
    is_mixed,
    join,
    owners,
)

# A conjunct of a filter: its test as written, and whether a chosen parameter passes or fails it.
Test = tuple[str, bool]


@dataclass(frozen=True)
class Selection:
    """The parameters of `whole` that pass every test of `tests` (the `Value.payload` of such PARAMS)."""

    whole: Value
    tests: frozenset[Test]


def chosen(params: Value, filters: Sequence[cst.BaseExpression]) -> Value:
    """The parameters of `params` a comprehension's `if` clauses keep: parameters all half stay
    half; of a model half in part, those chosen are of unknown dtype (a frozen bf16 base under fp32
    adapters, chosen by `requires_grad`, is all fp32), the filter kept to unite them again."""
    if not filters or not is_mixed(params):
        return params
    return _choose(params, frozenset(test for node in filters for test in _conjuncts(node)))


def _choose(whole: Value, tests: frozenset[Test]) -> Value:
    whole, tests = _narrowed(whole, tests)
    if not tests or not is_mixed(whole):
        return whole  # all of one dtype: whatever the other tests choose is of it
    if whole.op in (HALF_BUT_NORMS, HALF_TRAINABLE) and all(_is_trainable_test(test) for test in tests):
        # Half but its normalization layers: the trainable parameters hold the half weights,
        # unless only the normalization layers were trained, which no training script does. A
        # PEFT model's trainable parameters hold the half copies of its modules to save.
        return whole
    return Value(Kind.PARAMS, Precision.UNKNOWN, identity=whole.identity, payload=Selection(whole, tests))


# A test that keeps the parameters of one child by their names: `"policy." in n`, `n.startswith("policy")`.
_CHILD_TESTS = (
    re.compile(r"""^["']([A-Za-z_]\w*)\.?["'] in \w+$"""),
    re.compile(r"""^\w+\.startswith\(["']([A-Za-z_]\w*)\.?["']\)$"""),
)


def _narrowed(whole: Value, tests: frozenset[Test]) -> tuple[Value, frozenset[Test]]:
    """The parameters of the child of `whole` a test keeps by name (TRL's PPO `create_optimizer`:
    `[p for n, p in model.named_parameters() if "policy." in n and p.requires_grad]` over a
    `PolicyAndValueWrapper`), with the other tests; `whole` and `tests` where none does."""
    for test in tests:
        text, holds = test
        match = next((found for pattern in _CHILD_TESTS if (found := pattern.match(text))), None) if holds else None
        child = whole.item(match.group(1)) if match is not None else None
        if child is not None and child.kind is Kind.PARAMS:
            return _narrowed(child.with_(identity=whole.identity), tests - {test})
    return whole, tests


def combine_params(groups: list[Value]) -> Value:
    """Parameters gathered from several places (param groups, concatenated lists): an optimizer
    over them updates half weights as soon as one group is half. What is not known to be parameters
    (an empty list being filled, `extra_params` handed in) adds nothing known: the optimizer still
    holds the model's weights. Every caller gathers parameters, so one group at least is some."""
    params = _united([group for group in groups if group.kind is Kind.PARAMS])
    for group in params:
        if group.precision.is_low:
            return group
    result = params[0]
    for group in params[1:]:
        result = join(result, group)
    modules = frozenset().union(*(owners(group.identity) for group in params))
    return result.with_(identity=Owners(modules)) if len(modules) > 1 else result


def _united(groups: list[Value]) -> list[Value]:
    """The groups, with two selections of the same parameters whose filters differ only by one test
    that one passes and the other fails made one selection (by the tests they share)."""
    groups = list(groups)
    for index, first in enumerate(groups):
        for later, second in enumerate(groups[index + 1 :], start=index + 1):
            united = _union(first, second)
            if united is not None:
                del groups[later]
                groups[index] = united
                return _united(groups)
    return groups


def _union(first: Value, second: Value) -> Value | None:
    one, other = first.payload, second.payload
    if not (isinstance(one, Selection) and isinstance(other, Selection)):
        return None
    if one.whole.identity is None or one.whole.identity is not other.whole.identity:
        return None
    only_one, only_other = one.tests - other.tests, other.tests - one.tests
    if len(only_one) != 1 or len(only_other) != 1:
        return None
    (text, holds), (other_text, other_holds) = *only_one, *only_other
    if text != other_text or holds == other_holds:
        return None
    return _choose(one.whole, one.tests & other.tests)


def _conjuncts(node: cst.BaseExpression) -> list[Test]:
    """`"norm" not in n and p.requires_grad` as `[('"norm" in n', False), ("p.requires_grad", True)]`."""
    if type(node) is cst.BooleanOperation and type(node.operator) is cst.And:
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    if type(node) is cst.UnaryOperation and type(node.operator) is cst.Not:
        inner = _conjuncts(node.expression)
        return [(inner[0][0], not inner[0][1])] if len(inner) == 1 else [(_code(node), True)]
    if type(node) is cst.Comparison and len(node.comparisons) == 1:
        (comparison,) = node.comparisons
        operator, holds = _CANONICAL.get(type(comparison.operator), (None, True))
        if operator is not None:
            return [(f"{_code(node.left)} {operator} {_code(comparison.comparator)}", holds)]
    return [(_code(node), True)]


def _is_trainable_test(test: Test) -> bool:
    text, holds = test
    return holds and text.endswith(".requires_grad")


def _code(node: cst.CSTNode) -> str:
    return " ".join(_MODULE.code_for_node(node).split())


_MODULE = cst.Module([])
# Each comparison as one test and whether it holds: `a not in b` fails `a in b`, `x < 2` fails `x >= 2`.
_CANONICAL: dict[type, tuple[str, bool]] = {
    cst.In: ("in", True),
    cst.NotIn: ("in", False),
    cst.Equal: ("==", True),
    cst.NotEqual: ("==", False),
    cst.Is: ("is", True),
    cst.IsNot: ("is", False),
    cst.GreaterThanEqual: (">=", True),
    cst.LessThan: (">=", False),
    cst.LessThanEqual: ("<=", True),
    cst.GreaterThan: ("<=", False),
}
