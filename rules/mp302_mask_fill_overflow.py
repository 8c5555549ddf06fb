from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import libcst as cst

from mplint.analysis import limits, torch_api
from mplint.analysis.values import Value
from mplint.findings import Applicability
from mplint.rule import Autofix, Rule
from mplint.tree import argument, dotted_text, statements

if TYPE_CHECKING:
    from mplint.run.engine import FileContext

_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply)


@dataclass(frozen=True)
class _Overflow:
    """A constant too large for float16 (`constant`) meeting a float16 tensor (`tensor`)."""

    tensor: Value
    tensor_node: cst.BaseExpression | None  # None: not written in the call (`**fill_kwargs`)
    constant: float
    constant_node: cst.BaseExpression | None


class MaskFillOverflow(Rule):
    """A mask constant such as `-1e9` is written into a float16 tensor, where it does not fit.

    ## What it does
    Finds attention-style masking with a constant beyond float16's range (|c| > 65504: `-1e9`,
    `-1e10`, `1e5`) applied to a tensor that is float16: `scores.masked_fill(mask, -1e9)`,
    `torch.masked_fill(...)`, `torch.where(mask, scores, -1e9)`, and arithmetic masks such as
    `scores + (1.0 - mask) * -1e9` whose operand is float16. A tensor is float16 when the model
    was made half (`model.half()`, `torch_dtype=torch.float16`) or when it comes out of a matmul
    or a module inside a float16 autocast region. `float("-inf")`, `torch.finfo(x.dtype).min`,
    `-10000.0` and constants applied to fp32 or bf16 tensors (bf16 holds 1e9) are fine.

    ## Why is this bad
    float16's largest finite value is 65504. `masked_fill` converts its value to the tensor's
    dtype with an overflow check and fails with `RuntimeError: value cannot be converted to type
    at::Half without overflow` as soon as training switches to fp16. Arithmetic silently gives
    `-inf` instead (`torch.ones(2, dtype=torch.half) * -1e9` is `[-inf, -inf]`), and `(1 -
    mask) * -inf` and the softmax of a fully masked row (padding queries) are NaN, which then
    spreads through the whole batch.

    ## Example
    ```python
    with torch.autocast("cuda", dtype=torch.float16):
        scores = q @ k.transpose(-2, -1) / math.sqrt(d)
        scores = scores.masked_fill(mask == 0, -1e9)
        attn = scores.softmax(dim=-1)
    ```

    ## Fix
    Use the most negative value of the tensor's own dtype:
    `scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)`. The autofix does exactly
    that when the tensor is a plain name or attribute and the file imports `torch`; it is
    marked unsafe because the masked logits change from -1e9 to -65504 in fp16 (and to
    float32's minimum in fp32 runs).
    """

    CODE = "MP302"
    NAME = "mask-fill-overflow"
    FIX = Applicability.UNSAFE
    MESSAGE = (
        "{op} with {constant:g} on a {dtype} tensor ({origin}): float16 tops out at 65504, {consequence}; "
        "use torch.finfo(x.dtype).min"
    )
    FILL_CONSEQUENCE = "masked_fill raises 'value cannot be converted to type at::Half without overflow'"
    ARITHMETIC_CONSEQUENCE = "the mask becomes inf and a fully masked row's softmax is NaN"
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    # Masking in a file that only calls a half model built elsewhere: by name, or by a large literal.
    SINKS = frozenset({"masked_fill"})
    VALID = (
        """
import torch
model = torch.nn.Linear(64, 64).half()
scores = model(x) @ model(x).transpose(-2, -1)
scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
""",
        """
import torch
model = torch.nn.Linear(64, 64)
scores = model(x) @ model(x).transpose(-2, -1)
scores = scores.masked_fill(mask == 0, -1e9)
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(64, 64).half()
scores = model(x) @ model(x).transpose(-2, -1)
scores = scores.masked_fill(mask == 0, -1e9)
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.torch_alias: str | None = None

    def visit_Module(self, node: cst.Module) -> None:
        self.torch_alias = _torch_alias(node)

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            op = fact.op
            if op in ("masked_fill", "masked_fill_"):
                on_method = fact.method is not None
                # A method (`fact.method`) is called as `receiver.method(...)`: `node.func` is an Attribute.
                tensor_node = cast(cst.Attribute, node.func).value if on_method else argument(node, 0, "input")
                value_node = argument(node, 1 if on_method else 2, "value")
                candidates = [(fact.input(), tensor_node, fact.arg(1 if on_method else 2, "value"), value_node)]
                consequence = self.FILL_CONSEQUENCE
            elif fact.function == "torch.where" and len(fact.args) == 3:
                first, second = argument(node, 1), argument(node, 2)
                candidates = [(fact.args[1], first, fact.args[2], second), (fact.args[2], second, fact.args[1], first)]
                consequence = self.ARITHMETIC_CONSEQUENCE
            else:
                continue
            assert op is not None  # masked_fill, or the last part of torch.where
            for overflow in _overflows(candidates):
                self._report(node, op, overflow, consequence)
                return

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, _ARITHMETIC):
            return
        for fact in self.precision.operations(node):
            if not limits.may_be_fp16(fact.result.precision):
                continue
            candidates = [
                (fact.left, node.left, fact.right, node.right),
                (fact.right, node.right, fact.left, node.left),
            ]
            for overflow in _overflows(candidates):
                self._report(node, "arithmetic mask", overflow, self.ARITHMETIC_CONSEQUENCE)
                return

    def _report(self, node: cst.BaseExpression, op: str, overflow: _Overflow, consequence: str) -> None:
        message = self.MESSAGE.format(
            op=op,
            constant=overflow.constant,
            dtype=overflow.tensor.precision.value,
            origin=self.describe_origin(overflow.tensor.origin),
            consequence=consequence,
        )
        self.report(node, message, fix=self._fix(overflow))

    def _fix(self, overflow: _Overflow) -> Autofix | None:
        """`torch.finfo(<tensor>.dtype).min` in place of the constant, when `<tensor>` can be repeated safely."""
        # `scores`, `self.attn.scores`: evaluating a name chain twice reads the same tensor, runs nothing.
        tensor = dotted_text(overflow.tensor_node) if overflow.tensor_node is not None else ""
        if self.torch_alias is None or not tensor or overflow.constant_node is None:
            return None
        bound = "min" if overflow.constant < 0 else "max"
        replacement = f"{self.torch_alias}.finfo({tensor}.dtype).{bound}"
        return Autofix(f"use {replacement}", (self.replace(overflow.constant_node, replacement),), Applicability.UNSAFE)


def _overflows(
    candidates: Sequence[tuple[Value | None, cst.BaseExpression | None, Value | None, cst.BaseExpression | None]],
) -> Iterator[_Overflow]:
    """(tensor, its node, constant, its node) pairings where the tensor may be fp16 and the constant overflows it."""
    for tensor, tensor_node, constant, constant_node in candidates:
        if tensor is None or constant is None:
            continue
        if not limits.may_be_fp16(tensor.precision):
            continue
        too_large = [number for number in limits.numbers(constant) if limits.overflows_fp16(number)]
        if too_large:
            yield _Overflow(tensor, tensor_node, too_large[0], constant_node)


def _torch_alias(module: cst.Module) -> str | None:
    """The name `torch` is bound to by a module-level import (`import torch`, `import torch as th`)."""
    for statement in statements(module):
        if not isinstance(statement, cst.Import):
            continue
        for alias in statement.names:
            name = alias.evaluated_name
            if alias.asname is None and (name == "torch" or name.startswith("torch.")):
                return "torch"
            if name == "torch":  # `import torch as th`
                return alias.evaluated_alias
    return None
