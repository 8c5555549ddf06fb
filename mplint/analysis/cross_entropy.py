"""Cross-entropy written out: a `log_softmax` whose result, in the function that computes it, only
feeds a classification loss over the classes, as `F.cross_entropy(logits, targets)` would.

MP001 is about log-probabilities used as values (ratios `exp(logp - old_logp)`, KL penalties, DPO
log-ratios, gathered per-token log-probs); the training loss of a classifier is not one, whether
`F.cross_entropy` computes it or the code spells it out. Spelled out, every use of the
log-softmax's result is one of:
- the input of `nll_loss`, not negated back into log-probs (`-F.nll_loss(..., reduction="none")`
  is per-token log-probs, as `-F.cross_entropy(..., reduction="none")` is);
- reduced over the class dimension (the log-softmax's `dim`, written as it is there), alone or as
  a factor of a product, and negated on its way into the loss: soft-target and label-smoothing
  cross-entropy, `-(targets * log_probs).sum(-1)`, `-log_probs.mean(dim=1)`,
  `xent - alpha * log_probs.mean(-1)`. A mean or sum over every dimension at once
  (`-log_probs.mean()`) is no cross-entropy over the classes: it stays reported, and so does a
  product whose other factor is a model's `softmax` (a teacher's probabilities: distillation, the
  log-probs weighed as values).
Held in a name, the name is bound once in the function, by that assignment, and read only so:
never returned, stored, gathered or indexed, nor declared global. Read from the function's code;
what a call is (`nll_loss`, a `sum`, the dims they are given) comes from the precision model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import libcst as cst

from mplint.tree import children, enclosing_function, single_assignment, walk

if TYPE_CHECKING:
    from mplint.analysis.facts import CallFact
    from mplint.analysis.model import PrecisionModel

_REDUCTIONS = frozenset({"sum", "mean"})
Parents = dict[int, cst.CSTNode]


def is_written_out(
    log_softmax: cst.Call, dim: object, pieces: Sequence[tuple[int, cst.Module]], precision: PrecisionModel
) -> bool:
    """Whether the `log_softmax` call (over dimension `dim`, an int as written) is cross-entropy
    written out in the function around it (never at module level: a global may be read anywhere)."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        return False
    function = enclosing_function(log_softmax, pieces)
    if function is None:
        return False
    parents: Parents = {id(child): node for node in walk(function) for child in children(node)}
    uses = _uses(log_softmax, function, parents)
    return bool(uses) and all(_feeds_loss(use, dim, function, parents, precision) for use in uses)


def _uses(log_softmax: cst.Call, function: cst.FunctionDef, parents: Parents) -> list[cst.BaseExpression]:
    """The expressions that read the log-softmax's result: the call itself, or every other occurrence
    of the name it is assigned to (none when the name is declared global or nonlocal)."""
    assignment = parents.get(id(log_softmax))
    if not (
        isinstance(assignment, cst.Assign)
        and len(assignment.targets) == 1
        and isinstance(assignment.targets[0].target, cst.Name)
    ):
        return [log_softmax]
    bound = assignment.targets[0].target
    reads: list[cst.BaseExpression] = []
    for node in walk(function):
        if isinstance(node, (cst.Global, cst.Nonlocal)) and any(
            alias.name.value == bound.value for alias in node.names
        ):
            return []
        if isinstance(node, cst.Name) and node.value == bound.value and node is not bound:
            reads.append(node)  # another binding is a read no loss accepts, and fails there
    return reads


def _feeds_loss(
    use: cst.BaseExpression, dim: int, function: cst.FunctionDef, parents: Parents, precision: PrecisionModel
) -> bool:
    nll_loss = _input_of(use, "nll_loss", parents, precision)
    if nll_loss is not None:
        return not _negated(nll_loss, parents) and not _negated_by_name(nll_loss, function, parents)
    if _negative_likelihood(use, dim, function, parents, precision):
        return True
    factor, negated, others = _product(use, parents)
    if any(_probabilities(other, function, parents, precision) for other in others):
        return False  # a teacher's probabilities as the targets: distillation, the log-probs are values
    reduction = _reduction(factor, dim, parents, precision)
    return reduction is not None and negated != _negated(reduction, parents)


# Methods that hand back the same probabilities (`F.softmax(t, -1).detach()`).
_SAME_VALUES = frozenset({"detach", "float", "to", "clone", "contiguous"})


def _probabilities(
    expression: cst.BaseExpression, function: cst.FunctionDef, parents: Parents, precision: PrecisionModel
) -> bool:
    """Whether `expression` is a model's probabilities, a `softmax` (held in a name bound once in the
    function, or chained through `.detach()`): soft targets from a teacher, not from labels (label
    smoothing builds its targets from `one_hot`)."""
    while isinstance(expression, cst.Call) and isinstance(expression.func, cst.Attribute):
        if expression.func.attr.value not in _SAME_VALUES:
            break
        expression = expression.func.value
    if isinstance(expression, cst.Name):
        bound = single_assignment(function, expression.value)
        if bound is None:
            return False
        expression = bound
    return isinstance(expression, cst.Call) and any(fact.op == "softmax" for fact in _facts(expression, precision))


def _reduction(
    expression: cst.BaseExpression, dim: int, parents: Parents, precision: PrecisionModel
) -> cst.Call | None:
    """The `sum` or `mean` of `expression` over dimension `dim`."""
    for op in _REDUCTIONS:
        call = _input_of(expression, op, parents, precision)
        if call is not None and _over(call, dim, precision):
            return call
    return None


def _negative_likelihood(
    expression: cst.BaseExpression, dim: int, function: cst.FunctionDef, parents: Parents, precision: PrecisionModel
) -> bool:
    """Whether `expression` is gathered over `dim`, negated and bound to a name never negated back:
    the target class's negative log-likelihood (timm's label smoothing, `nll_loss =
    -logprobs.gather(dim=-1, index=target.unsqueeze(1))`), not a policy's log-probs weighed in place
    (`-logp.gather(1, actions) * returns`)."""
    gather = _input_of(expression, "gather", parents, precision)
    if gather is None or not _over(gather, dim, precision):
        return False
    negation = parents.get(id(gather))
    return (
        isinstance(negation, cst.UnaryOperation)
        and isinstance(negation.operator, cst.Minus)
        and isinstance(parents.get(id(negation)), cst.Assign)
        and not _negated_by_name(negation, function, parents)
    )


def _input_of(expression: cst.BaseExpression, op: str, parents: Parents, precision: PrecisionModel) -> cst.Call | None:
    """The call of `op` that takes `expression` as its tensor: as its receiver (`x.sum(-1)`), or as
    its first positional argument or `input=` (`F.nll_loss(x, y)`, `torch.sum(x, dim=1)`)."""
    parent = parents.get(id(expression))
    if isinstance(parent, cst.Attribute):
        call = parents.get(id(parent))
        if (
            isinstance(call, cst.Call)
            and call.func is parent
            and any(fact.method == op for fact in _facts(call, precision))
        ):
            return call
        return None
    call = parents.get(id(parent)) if isinstance(parent, cst.Arg) else None
    if not isinstance(call, cst.Call) or not isinstance(parent, cst.Arg):
        return None
    positional = [arg for arg in call.args if arg.keyword is None and not arg.star]
    first = positional[:1] == [parent] or (parent.keyword is not None and parent.keyword.value == "input")
    named = any(fact.function is not None and fact.op == op for fact in _facts(call, precision))
    return call if first and named else None


def _facts(call: cst.Call, precision: PrecisionModel) -> Sequence[CallFact]:
    return precision.calls(call, conditional=True)


def _over(reduction: cst.Call, dim: int, precision: PrecisionModel) -> bool:
    for fact in _facts(reduction, precision):
        reduced = fact.arg(0 if fact.method is not None else 1, "dim")  # `x.sum(dim)` / `torch.sum(x, dim)`
        if reduced is not None and reduced.const == dim and not isinstance(reduced.const, bool):
            return True
    return False


def _product(
    expression: cst.BaseExpression, parents: Parents
) -> tuple[cst.BaseExpression, bool, list[cst.BaseExpression]]:
    """The product `expression` is a factor of (`targets * log_probs`, `-alpha * log_probs`), whether
    a factor or the product negates it, and its other factors."""
    negated = False
    others: list[cst.BaseExpression] = []
    while True:
        parent = parents.get(id(expression))
        if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Minus):
            negated = not negated
        elif isinstance(parent, cst.BinaryOperation) and isinstance(parent.operator, cst.Multiply):
            other = parent.right if parent.left is expression else parent.left
            negated ^= _negative(other)
            others.append(other)
        else:
            return expression, negated, others
        expression = parent


def _negated(expression: cst.BaseExpression, parents: Parents) -> bool:
    """Whether `expression` enters the expression around it negated: `-x`, `a - x`, `-alpha * x`,
    through scaling and adding (`(1 - alpha) * xent + alpha * x`) and further means and sums."""
    negated = False
    while True:
        parent = parents.get(id(expression))
        if isinstance(parent, cst.UnaryOperation) and isinstance(parent.operator, cst.Minus):
            negated = not negated
        elif isinstance(parent, cst.BinaryOperation) and isinstance(
            parent.operator, (cst.Add, cst.Subtract, cst.Multiply, cst.Divide)
        ):
            if isinstance(parent.operator, cst.Subtract) and parent.right is expression:
                negated = not negated
            if isinstance(parent.operator, (cst.Multiply, cst.Divide)):
                negated ^= _negative(parent.right if parent.left is expression else parent.left)
        elif isinstance(parent, cst.Attribute) and parent.attr.value in _REDUCTIONS:
            call = parents.get(id(parent))
            if not (isinstance(call, cst.Call) and call.func is parent):
                return negated
            parent = call  # `(...).mean()`: a further reduction of the same loss
        else:
            return negated
        expression = parent


def _negative(factor: cst.BaseExpression) -> bool:
    return isinstance(factor, cst.UnaryOperation) and isinstance(factor.operator, cst.Minus)


def _negated_by_name(expression: cst.BaseExpression, function: cst.FunctionDef, parents: Parents) -> bool:
    """`nll = F.nll_loss(log_probs, y, reduction="none")` (or `nll = -log_probs.gather(...)`), then
    `-nll`: per-token log-probs again."""
    assignment = parents.get(id(expression))
    if not (isinstance(assignment, cst.Assign) and len(assignment.targets) == 1):
        return False
    target = assignment.targets[0].target
    if not isinstance(target, cst.Name):
        return False
    return any(
        isinstance(node, cst.Name) and node.value == target.value and node is not target and _negated(node, parents)
        for node in walk(function)
    )
