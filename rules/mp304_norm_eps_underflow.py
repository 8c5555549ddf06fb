from __future__ import annotations

import libcst as cst

from mplint.analysis import limits, torch_api
from mplint.analysis.facts import CallFact, OperationFact
from mplint.analysis.values import Value
from mplint.rule import Rule


class NormEpsUnderflow(Rule):
    """A normalization's `eps` is added to a float16 tensor, where it rounds to zero.

    ## What it does
    Finds an epsilon below float16's smallest subnormal (5.96e-8; BERT's `1e-12`, `1e-10`)
    added to a tensor that is float16: the variance or mean square of a hand-written LayerNorm /
    RMSNorm (`torch.sqrt(s + self.variance_epsilon)`, `torch.rsqrt(x.pow(2).mean(-1, keepdim=True)
    + self.eps)`) or a norm guard (`x / (x.norm(dim=-1, keepdim=True) + 1e-12)`), in a model made
    half (`model.half()`, `.to(torch.float16)`) or computed under float16 autocast. It follows
    the eps from the constructor (`BertLayerNorm(hidden, eps=1e-12)`) into `forward`.

    Also `F.normalize` (default `eps=1e-12`) and `F.cosine_similarity` (default `eps=1e-8`) called
    on a float16 tensor outside autocast with their default eps or another one float16 cannot
    hold: both clamp a norm from below by eps, and that clamp is 0 in float16 (torch 2.13, CPU:
    `F.normalize(torch.zeros(2, 8, dtype=torch.float16), dim=-1)` is all NaN, and so is its
    gradient; fp32 and bf16 give 0). Under CUDA autocast they are quiet: `cosine_similarity` and
    the `norm` inside `normalize` run in fp32 there. Reported upstream as pytorch/pytorch#32137
    ("normalize epsilon too small for half precision"); kornia/kornia#4021 hit it through
    `F.normalize`'s default.

    Not reported: `nn.LayerNorm`, `nn.GroupNorm`, `nn.RMSNorm` and `nn.BatchNorm*d` themselves
    (torch's kernels take `eps` as a double and add it in fp32 for half inputs: on torch 2.13,
    `nn.LayerNorm(8, eps=1e-12).half()` of a constant row is 0, not NaN), bfloat16 tensors
    (bf16 holds 1e-12), and statistics computed after `.float()`.

    ## Why is this bad
    In float16 `s + 1e-12` is just `s`: the epsilon that was meant to keep the denominator away
    from zero is gone. A row with zero variance (padding, a constant feature, an underflowed
    `x.pow(2)` — any |x| below ~2.4e-4 squares to 0 in fp16) then divides by
    `sqrt(0) = 0`: the output is inf or NaN and the next optimizer step spreads it to every
    weight. The original pytorch-pretrained-BERT `BertLayerNorm` (used when apex was missing)
    is exactly this code.

    ## Example
    ```python
    class BertLayerNorm(nn.Module):
        def __init__(self, hidden_size, eps=1e-12):
            ...
        def forward(self, x):
            u = x.mean(-1, keepdim=True)
            s = (x - u).pow(2).mean(-1, keepdim=True)
            return self.weight * (x - u) / torch.sqrt(s + self.variance_epsilon) + self.bias

    model = BertModel(config).cuda().half()
    ```

    ## Fix
    For `F.normalize` / `F.cosine_similarity`: normalize in fp32 and cast back
    (`F.normalize(x.float(), dim=-1).to(x.dtype)`), or pass an eps float16 holds (`eps=1e-6`).
    For a hand-written norm: use `nn.LayerNorm(hidden_size, eps=1e-12)` (or `nn.RMSNorm`), which adds eps in fp32; or
    compute the statistics in fp32 and cast back, as Hugging Face's `LlamaRMSNorm` does:
    `x32 = x.float(); x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps);
    return self.weight * x32.to(x.dtype)`; or pick an eps of at least 1e-5 for fp16 runs.
    """

    CODE = "MP304"
    NAME = "norm-eps-underflow"
    CALL_MESSAGE = (
        "{function}'s eps={eps:g}{default} clamps the norm of a {dtype} tensor ({origin}) and is {rounded:g} "
        "in float16: a zero vector gives 0/0 = NaN (and NaN gradients); normalize in fp32 "
        "({function}(x.float(), ...).to(x.dtype)) or pass an eps float16 holds (1e-6)"
    )
    MESSAGE = (
        "eps={eps:g} added to a {dtype} tensor ({origin}) is lost in float16 (it rounds to {rounded:g}): "
        "a zero variance divides by zero and gives inf/NaN; compute the statistics in fp32 "
        "(x.float()) or use nn.LayerNorm / nn.RMSNorm, which add eps in fp32"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    VALID = (
        """
import torch
x = torch.randn(4, 8, dtype=torch.float16)
var = x.float().pow(2).mean(-1, keepdim=True)
y = x * torch.rsqrt(var + 1e-12).to(x.dtype)
""",
        """
import torch
x = torch.randn(4, 8, dtype=torch.float16)
var = x.pow(2).mean(-1, keepdim=True)
y = x * torch.rsqrt(var + 1e-5)
""",
    )
    INVALID = (
        """
import torch
x = torch.randn(4, 8, dtype=torch.float16)
var = x.pow(2).mean(-1, keepdim=True)
y = x * torch.rsqrt(var + 1e-12)
""",
    )

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, cst.Add):
            return
        for fact in self.precision.operations(node):
            message = self._message(fact)
            if message is not None:
                self.report(node, message)
                return

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node, conditional=True):
            message = self._call_message(fact)
            if message is not None:
                self.report(node, message, condition=fact.condition)
                return

    def _call_message(self, fact: CallFact) -> str | None:
        name = fact.function or ""
        function = torch_api.last_part(name)
        if function not in _CLAMPED_NORMS or not name.startswith("torch."):
            return None
        if fact.region is not None and fact.region.enabled is not False:
            return None  # autocast runs the norm (and cosine_similarity) in fp32
        parameters, default = _CLAMPED_NORMS[function]
        inputs = [value for index, keyword in enumerate(parameters) if (value := fact.arg(index, keyword)) is not None]
        if any(value.precision.is_full for value in inputs):
            return None  # cosine_similarity promotes its inputs: with an fp32 one it computes in fp32
        tensor = next((value for value in inputs if limits.may_be_fp16(value.precision)), None)
        if tensor is None:
            return None
        given = fact.arg(3, "eps")
        choices = (default,) if given is None else limits.numbers(given)
        lost = [number for number in choices if limits.underflows_fp16(number)]
        if not lost:
            return None
        return self.CALL_MESSAGE.format(
            function=function,
            eps=max(lost),
            default=" (the default)" if given is None else "",
            dtype=tensor.precision.value,
            origin=self.describe_origin(tensor.origin, fact.chain),
            rounded=limits.as_fp16(max(lost)),
        )

    def _message(self, fact: OperationFact) -> str | None:
        if not limits.may_be_fp16(fact.result.precision):
            return None
        for tensor, eps in ((fact.left, fact.right), (fact.right, fact.left)):
            lost = _lost_epsilon(tensor, eps)
            if lost is not None:
                return self.MESSAGE.format(
                    eps=lost,
                    dtype=tensor.precision.value,
                    origin=self.describe_origin(tensor.origin),
                    rounded=limits.as_fp16(lost),
                )
        return None


# Functions that clamp a norm from below by `eps`: their tensor parameters and their default eps
# (torch 2.13's signatures; eps is the fourth parameter of both).
_CLAMPED_NORMS = {"normalize": (("input",), 1e-12), "cosine_similarity": (("x1", "x2"), 1e-8)}


def _lost_epsilon(tensor: Value, eps: Value) -> float | None:
    """The constant `eps` when float16 cannot hold it and `tensor` may be float16."""
    if not limits.may_be_fp16(tensor.precision):
        return None
    choices = limits.numbers(eps)
    lost = [number for number in choices if limits.underflows_fp16(number)]
    return max(lost) if lost else None
