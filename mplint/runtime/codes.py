"""Codes for problems only the runtime verifier sees: docs in the rules' shape, for `mplint explain`.

Each is the runtime twin of a static rule: when the static pass reported the same place, the
verdict goes on the static finding instead; these codes cover what it missed (a dtype that
came from a checkpoint, a config value, code the static pass cannot follow).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass


@dataclass(frozen=True)
class RuntimeCode:
    code: str
    name: str
    static_twin: str
    message: str
    docs: str

    def summary(self) -> str:
        return self.docs.splitlines()[0]


MP901 = RuntimeCode(
    code="MP901",
    name="runtime-half-log-softmax",
    static_twin="MP001",
    message="log-softmax ran in half precision here (seen at run time)",
    docs=inspect.cleandoc(
        """
        A log-softmax or logsumexp ran on float16/bfloat16 values at run time.

        ## What it does
        `mplint verify` saw `aten._log_softmax` or `aten.logsumexp` produce a float16 or
        bfloat16 result at this line, which the static pass did not report.

        ## Why is this bad
        Log-probabilities need fp32: in bf16 (8 bits of mantissa) log-probs of nearby tokens
        collapse to the same value, and policy-gradient ratios `exp(logp - old_logp)` drift.
        Note that CUDA autocast does not protect `F.cross_entropy` on half logits: its inner
        log-softmax keeps the logits' dtype.

        ## Fix
        Cast the logits first: `F.log_softmax(logits.float(), dim=-1)`.
        """
    ),
)

MP902 = RuntimeCode(
    code="MP902",
    name="unscaled-fp16-backward",
    static_twin="MP002",
    message="backward ran through float16 without an enabled GradScaler (seen at run time)",
    docs=inspect.cleandoc(
        """
        A backward pass ran through float16 ops without loss scaling, at run time.

        ## What it does
        `mplint verify` saw a backward pass whose graph holds float16 autocast regions (or
        float16 parameters) while its root did not come from an enabled `GradScaler.scale`.
        It measures the share of fp16 gradient values that were subnormal or flushed to zero
        where the same op in fp32 gave a non-zero value.

        ## Why is this bad
        fp16 cannot represent magnitudes below 6e-8 and loses precision below 6.1e-5: small
        gradients vanish and training silently stalls.

        ## Fix
        Use `scaler = torch.amp.GradScaler("cuda")`, `scaler.scale(loss).backward()`,
        `scaler.step(optimizer)`, `scaler.update()`; or autocast to bfloat16.
        """
    ),
)

MP903 = RuntimeCode(
    code="MP903",
    name="runtime-optimizer-on-half-params",
    static_twin="MP003",
    message="the optimizer updates half-precision parameters (seen at run time)",
    docs=inspect.cleandoc(
        """
        An optimizer was built over, or stepped, float16/bfloat16 parameters at run time.

        ## What it does
        `mplint verify` recorded the parameter dtypes when the optimizer was built and at each
        step, and the dtypes of its state (`exp_avg`, `exp_avg_sq`) after a step.

        ## Why is this bad
        Updates smaller than half a unit in the last place of a half parameter are lost
        (`lr * grad` rounds away), and half optimizer state loses Adam's second moments.

        ## Fix
        Keep fp32 master parameters: train an fp32 model under autocast, or keep an fp32 copy
        for the optimizer.
        """
    ),
)

RUNTIME_CODES = {code.code: code for code in (MP901, MP902, MP903)}
