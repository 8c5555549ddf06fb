from __future__ import annotations

import libcst as cst

from mplint.analysis import torch_api
from mplint.analysis.facts import CallFact
from mplint.analysis.values import Precision, Value
from mplint.rule import Rule


class HalfReductionOutsideAutocast(Rule):
    """A loss or a sum is computed on bf16/fp16 tensors where no autocast region runs it in fp32.

    ## What it does
    Finds a regression or divergence loss of `torch.nn.functional` (`F.mse_loss`, `l1_loss`,
    `smooth_l1_loss`, `huber_loss`, `kl_div`, `binary_cross_entropy_with_logits`; loss modules
    such as `nn.MSELoss()` are not followed yet) and a sum (`x.sum()`, `torch.sum(x)`, `x.cumsum(dim)`) whose
    input is bfloat16 or float16: the output of a model cast with `.half()`/`.to(torch.bfloat16)`
    or loaded in bf16, or a value computed inside an autocast region and used after the `with`
    block ends. It names where the low precision came from.

    Not reported: the op inside an enabled CUDA autocast region (CUDA autocast runs all of them in
    fp32: `AT_FORALL_FP32` in torch 2.13's `ATen/autocast_mode.h`; CPU autocast runs the losses in
    fp32 but not `sum`/`cumsum`); `dtype=torch.float32` passed to the sum, or `.float()` first; a
    sum inside a module's own methods (its `forward`: the model's architecture, not the training
    code's loss); `.mean()` (torch accumulates it in fp32 and divides, so it cannot overflow, and no
    autocast region upcasts it either); tensors whose precision cannot be traced.

    ## Why is this bad
    torch returns these ops in their input's dtype. In float16, anything past 65504 is inf: on
    torch 2.13 (CPU) `torch.ones(100_000, dtype=torch.float16).sum()` is `inf`, and `F.mse_loss` of
    predictions off by 300 is `inf` where fp32 gives 90000; an inf loss makes GradScaler skip every
    step. bfloat16 keeps 8 significant bits: `torch.ones(100_000, dtype=torch.bfloat16).sum()` is
    99840, and `F.kl_div` between a bf16 distribution over 32000 tokens and itself is 6e-5 instead
    of 0, the size of the KL penalty it is meant to measure. Inside a CUDA autocast region the
    same lines run in fp32, so moving the loss out of the `with` block (as the AMP recipe says to
    do for backward) silently changes its precision. pytorch/pytorch#85791 reports an fp16 loss
    that is `inf` where fp32 is finite; in pytorch/pytorch#43556 AMP's author advises running the
    loss computation in fp32 for this reason.

    ## Example
    ```python
    with torch.autocast("cuda", dtype=torch.bfloat16):
        pred = model(x)
    loss = F.mse_loss(pred, target)  # after the block: computed in bfloat16
    ```

    ## Fix
    Cast to fp32 at the op: `F.mse_loss(pred.float(), target.float())`, `x.sum(dtype=torch.float32)`;
    or compute the loss inside the CUDA autocast region, which runs it in fp32.
    """

    CODE = "MP306"
    NAME = "half-reduction-outside-autocast"
    MESSAGE = (
        "{op} on a {dtype} tensor ({origin}){where}: the result is {dtype}, where {consequence}; "
        "cast to fp32 first ({cast})"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    # Substrings: `l1_loss` covers smooth_l1_loss, `cross_entropy` binary_cross_entropy_with_logits.
    # Not `cumsum`: a new word makes every function that mentions it worth analysing on its own
    # (34 more of torch/'s functions); the probabilities a cumsum sums come from a `softmax`.
    SINKS = frozenset({"mse_loss", "l1_loss", "huber_loss", "kl_div", "cross_entropy", "softmax"})
    VALID = (
        """
import torch
import torch.nn.functional as F
model = torch.nn.Linear(8, 1).cuda()
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = F.mse_loss(model(x), y)
""",
        """
import torch
import torch.nn.functional as F
model = torch.nn.Linear(8, 1).cuda().half()
loss = F.mse_loss(model(x).float(), y.float())
""",
    )
    INVALID = (
        """
import torch
import torch.nn.functional as F
model = torch.nn.Linear(8, 1).cuda()
with torch.autocast("cuda", dtype=torch.bfloat16):
    pred = model(x)
loss = F.mse_loss(pred, y)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node, conditional=True):
            found = _half_input(fact)
            if found is not None:
                op, tensor = found
                self.report(node, self._message(op, tensor, fact), condition=fact.condition)
                return

    def _message(self, op: str, tensor: Value, fact: CallFact) -> str:
        region = fact.region
        where = f" inside {region.describe()}, which does not upcast it" if region is not None else ""
        cast = "x.sum(dtype=torch.float32)" if op in _SUMS else f"{op}(x.float(), y.float())"
        return self.MESSAGE.format(
            op=op,
            dtype=tensor.precision.value,
            origin=self.describe_origin(tensor.origin, fact.chain),
            where=where or " outside an autocast region that runs it in fp32",
            consequence=_CONSEQUENCES[tensor.precision],
            cast=cast,
        )


# torch.nn.functional's losses that CUDA autocast runs in fp32 (and CPU autocast too), by name.
_LOSSES = frozenset(
    {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy_with_logits"}
)
# Reductions that return their input's dtype unless given `dtype=` (CUDA autocast runs them in fp32).
_SUMS = frozenset({"sum", "cumsum"})

_CONSEQUENCES = {
    Precision.FP16: "anything past 65504 is inf (100000 ones sum to inf)",
    Precision.BF16: "only 8 significant bits are kept (100000 ones sum to 99840)",
    Precision.HALF: "float16 overflows past 65504 and bfloat16 keeps 8 significant bits",
}


def _half_input(fact: CallFact) -> tuple[str, Value] | None:
    """(the op, its half input) when `fact` is a loss or sum computed in bf16/fp16."""
    op = fact.op
    if op in _SUMS:
        if fact.in_module or fact.arg(None, "dtype") is not None:
            return None
        tensors = [fact.input()]
    elif op in _LOSSES and (fact.function or "").startswith(("torch.nn.functional.", "F.")):
        target = fact.arg(1, "target")
        if target is not None and target.precision.is_full:
            return None  # promoted to the target's fp32
        tensors = [fact.arg(0, "input"), target]
    else:
        return None
    for tensor in tensors:
        if tensor is not None and torch_api.runs_in_half(tensor, fact.region, op):
            return op, tensor
    return None
