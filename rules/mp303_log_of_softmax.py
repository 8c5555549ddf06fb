from __future__ import annotations

import libcst as cst

from mplint.findings import Applicability
from mplint.rule import Autofix, Rule
from mplint.tree import positional_args

# The dotted names (as the precision model resolves them) of a softmax and of a log.
_SOFTMAX_FUNCTIONS = frozenset({"torch.softmax", "torch.nn.functional.softmax", "torch.special.softmax"})
_LOG_FUNCTIONS = frozenset({"torch.log"})


class LogOfSoftmax(Rule):
    """`log(softmax(x))` is computed in two steps instead of one `log_softmax`.

    ## What it does
    Finds a log taken directly of a softmax: `torch.log(F.softmax(x, dim))`,
    `torch.log(torch.softmax(x, dim))`, `F.softmax(x, dim).log()`, `x.softmax(dim).log()` and
    `torch.log(x.softmax(dim))`, whatever the precision. MP001 reports the same expression on
    half-precision logits (cast them to fp32); this rule is about the op itself.

    Not reported: a guarded log (`torch.log(F.softmax(x, -1) + 1e-8)`, `probs.clamp(min=eps).log()`),
    which is a different function on purpose (it bounds the log-probabilities and their
    gradients), and a softmax bound to a name first (`probs = F.softmax(...)`), whose
    probabilities are usually needed themselves (sampling, entropy).

    ## Why is this bad
    `softmax` rounds probabilities smaller than the dtype's tiniest value to 0 (about 1e-45 in
    fp32, 6e-8 in fp16): a logit 104 below the row's maximum is enough in fp32. `log(0)` is
    `-inf`, and `-inf` times a zero target in a cross-entropy or KL sum is NaN. The gradient of
    `log(p)` is `1/p`, which blows up long before `p` reaches 0. `log_softmax` computes
    `x - max - log(sum(exp(x - max)))` in one stable pass, never forms the probabilities, and is
    also one kernel instead of two.

    ## Example
    ```python
    log_probs = torch.log(F.softmax(logits, dim=-1))
    loss = -(targets * log_probs).sum(-1).mean()
    ```

    ## Fix
    `F.log_softmax(logits, dim=-1)` (same module alias, same arguments, including `dtype=`);
    `x.softmax(-1).log()` becomes `x.log_softmax(-1)`. The autofix is safe: the result is the
    same function of `x`, only computed without the rounding.
    """

    CODE = "MP303"
    NAME = "log-of-softmax"
    FIX = Applicability.SAFE
    MESSAGE = (
        "log of softmax: probabilities that round to 0 give -inf (and NaN gradients); "
        "use {replacement}, which is stable in every precision"
    )
    TRIGGERS = frozenset({"softmax"})
    VALID = (
        """
import torch.nn.functional as F
log_probs = F.log_softmax(logits, dim=-1)
""",
        """
import torch
import torch.nn.functional as F
log_probs = torch.log(F.softmax(logits, dim=-1) + 1e-8)
""",
    )
    INVALID = (
        """
import torch
import torch.nn.functional as F
log_probs = torch.log(F.softmax(logits, dim=-1))
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        softmax = self._softmax_under_log(node)
        if softmax is None:
            return
        if not isinstance(softmax.func, cst.Attribute):  # `from ... import softmax`: log_softmax is not imported
            self.report(node, self.MESSAGE.format(replacement="log_softmax(...)"))
            return
        # The softmax call as written, its method or function name made log_softmax.
        start = self.context.parsed.offsets(softmax)[0]
        name_start, name_end = (offset - start for offset in self.context.parsed.offsets(softmax.func.attr))
        written = self.source_of(softmax)
        fused = f"{written[:name_start]}log_softmax{written[name_end:]}"
        shown = fused[: name_start + len("log_softmax")]
        self.report(
            node,
            self.MESSAGE.format(replacement=f"{shown}(...)"),
            fix=Autofix(f"use {shown}", (self.replace(node, fused),), Applicability.SAFE),
        )

    def _softmax_under_log(self, node: cst.Call) -> cst.Call | None:
        """The softmax call `node` takes the log of directly: `torch.log(<softmax>)` or `<softmax>.log()`."""
        for fact in self.precision.calls(node):
            positional = positional_args(node)
            if fact.function in _LOG_FUNCTIONS and len(node.args) == len(positional) == 1:
                inner = positional[0]
            elif fact.method == "log":  # `Tensor.log()` takes no arguments
                assert isinstance(node.func, cst.Attribute)  # the analysis sees a method only in `x.method()`
                inner = node.func.value
            else:
                continue
            if isinstance(inner, cst.Call) and self._is_softmax(inner):
                return inner
        return None

    def _is_softmax(self, node: cst.Call) -> bool:
        return any(
            fact.function in _SOFTMAX_FUNCTIONS or fact.method == "softmax"  # a method's call has no function
            for fact in self.precision.calls(node)
        )
