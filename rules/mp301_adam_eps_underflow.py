from __future__ import annotations

import libcst as cst

from mplint.analysis import limits, torch_api
from mplint.analysis.facts import CallFact
from mplint.analysis.values import Kind
from mplint.rule import Rule

# Adam-family constructors whose update runs in the parameters' dtype, with their default `eps`.
# torch.optim's single-tensor and foreach paths store `sqrt(v) + eps` in the parameters' dtype;
# transformers' AdamW defaults to 1e-6, which float16 holds (only a smaller explicit eps counts).
_DEFAULT_EPS: dict[str | None, float] = {
    **{f"torch.optim.{name}": 1e-8 for name in ("Adam", "AdamW", "NAdam", "RAdam", "Adamax")},
    **{f"torch.optim.{name.lower()}.{name}": 1e-8 for name in ("Adam", "AdamW", "NAdam", "RAdam", "Adamax")},
    "transformers.AdamW": 1e-6,
    "transformers.optimization.AdamW": 1e-6,
}
_EPS_POSITION = 3  # (params, lr, betas, eps, ...) for every constructor above


class AdamEpsUnderflow(Rule):
    """An Adam-family optimizer over float16 parameters has an `eps` that float16 cannot hold.

    ## What it does
    Finds `torch.optim.Adam`, `AdamW`, `NAdam`, `RAdam`, `Adamax` (and `transformers.AdamW`)
    built over the parameters of a module made float16 (`model.half()`,
    `.to(torch.float16)`, `from_pretrained(..., torch_dtype=torch.float16)`,
    `torch.set_default_dtype(torch.float16)`) whose `eps`, given or defaulted, is below float16's
    smallest subnormal (5.96e-8). torch.optim's default `eps=1e-8` is such a value.

    Not reported: bfloat16 parameters (bf16 has fp32's exponent range, 1e-8 is representable);
    `fused=True` and optimizers whose kernels compute in fp32 whatever the parameter dtype
    (apex `FusedAdam`, bitsandbytes' 8-bit and 32-bit Adam), where `eps` is never rounded;
    parameters whose precision cannot be traced; an `eps` that is not a literal.

    ## Why is this bad
    The single-tensor and foreach implementations (the default when `fused` is not set) keep
    the optimizer state in the parameters' dtype and compute the denominator
    `exp_avg_sq.sqrt() / bias_correction2_sqrt + eps` into a float16 tensor: `1e-8` rounds to 0
    there. Wherever the second moment is zero or underflows (any gradient below ~2.4e-4 squares
    to less than float16's smallest subnormal), the denominator is 0 and the update
    `exp_avg / denom` is `inf` (or `0/0 = NaN` for a zero gradient): after one `step()` those
    weights are inf/NaN and the loss follows. On torch 2.13, one `Adam([p]).step()` over a
    float16 `p` with gradients `[1e-5, 0, 1e-3, 1.0]` gives `[-inf, nan, -inf, 0.999]`.

    ## Example
    ```python
    model = Net().cuda().half()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # eps=1e-8 is 0 in float16
    ```

    ## Fix
    Keep the parameters fp32 and train under `torch.autocast` with a `GradScaler` (see MP003).
    When the weights must stay float16, pass an `eps` float16 represents comfortably, as
    pure-fp16 recipes do: `torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)`; or use
    `fused=True`, which computes the update in fp32.
    """

    CODE = "MP301"
    NAME = "adam-eps-underflow"
    MESSAGE = (
        "{optimizer} over {dtype} parameters ({origin}) with eps={eps:g}, which is {rounded:g} in float16: "
        "where gradients underflow, sqrt(v) + eps is 0 and the step is inf/NaN; "
        "keep fp32 parameters under autocast, or pass eps=1e-4"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    NEEDS_HALF_STEPS = True
    SINKS = frozenset({"Adam", "NAdam", "RAdam"})
    VALID = (
        """
import torch
model = torch.nn.Linear(8, 8).half()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
""",
        """
import torch
model = torch.nn.Linear(8, 8).to(torch.bfloat16)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(8, 8).half()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            message = self._message(fact)
            if message is not None:
                self.report(node, message)
                return

    def _message(self, fact: CallFact) -> str | None:
        default = _DEFAULT_EPS.get(fact.function)
        if default is None or _is_true(fact.arg(None, "fused")):
            return None
        params = fact.arg(0, "params")
        if params is None or params.kind is not Kind.PARAMS or not limits.may_be_fp16(params.precision):
            return None
        if self.precision.has_master_weights(fact.node, fact.condition):
            return None  # a framework steps fp32 copies (DeepSpeed's wrapper): eps is added in fp32
        given = fact.arg(_EPS_POSITION, "eps")
        choices = limits.numbers(given) if given is not None else (default,)
        underflowing = [eps for eps in choices if limits.underflows_fp16(eps)]
        if not underflowing:  # also when no choice is known (`choices` empty)
            return None
        eps = max(underflowing)
        return self.MESSAGE.format(
            optimizer=torch_api.last_part(str(fact.function)),  # one of _DEFAULT_EPS
            dtype=params.precision.value,
            origin=self.describe_origin(params.origin),
            eps=eps,
            rounded=limits.as_fp16(eps),
        )


def _is_true(value: object) -> bool:
    return getattr(value, "payload", None) is True
