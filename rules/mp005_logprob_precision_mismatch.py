from __future__ import annotations

import libcst as cst

from mplint.analysis import torch_api
from mplint.analysis.facts import OperationFact
from mplint.analysis.values import Precision, Value
from mplint.rule import Rule


class LogProbPrecisionMismatch(Rule):
    """Two log-probabilities computed in different precisions are subtracted (a policy ratio or a KL).

    ## What it does
    Finds `logp - old_logp` where both terms are log-probabilities (a `log_softmax`, or a
    hand-written `logits.gather(...) - logits.logsumexp(-1)`, followed through `gather`, `squeeze`,
    `detach`, helpers and other files) and one was computed in bfloat16/float16 while the other
    was computed in float32: a policy's log-probs taken in a `torch.no_grad()` rollout from a
    model loaded in bf16 against the trained policy's under CUDA autocast (which runs
    `log_softmax` in fp32), or a reference model's bf16 log-probs against the policy's fp32 ones.
    Such a difference is the log of the PPO/GRPO importance ratio `exp(logp - old_logp)` or the
    per-token KL estimate `exp(ref - logp) - (ref - logp) - 1`.

    Not reported: both terms in the same precision (both bf16 is a consistent, if coarse, path);
    a term cast after its `log_softmax` (`logp_bf16.float()` holds the same bf16-rounded values, so
    it matches another bf16 term exactly); log-probs whose precision cannot be traced (rollout
    log-probs read back from vLLM, a buffer or a file); float32 against float64 (the difference is
    ~1e-7).

    ## Why is this bad
    For identical weights the ratio must be exactly 1 and the KL exactly 0; that is what makes
    PPO's clipping and GRPO's KL penalty measure the policy change. A log-probability rounded to
    bfloat16 keeps 8 significant bits: one between -8 and -4 is stored to a multiple of 2^-5, so
    it is off by up to 0.016 from the fp32 value (0.031 below -8), before the logits' own rounding.
    Against an fp32 log-prob of the same policy, the ratio of identical policies is not 1 (torch
    2.13, CPU: one 32000-way policy head run in bf16 and in fp32, 64 sampled tokens: ratios off by
    1.9% on average and up to 5.2%, see tests/runtime/test_catalog_claims.py); clipping fires on
    tokens the policy never moved, and the KL estimate is a bias with no policy change. The same
    error, between a rollout engine's log-probs and the trainer's, is the "rollout-training
    mismatch" that verl and TRL added truncated importance sampling for (verl-project/verl#2953,
    huggingface/trl#3867, after https://fengyao.notion.site/off-policy-rl); here both sides are
    the linted code's own.

    ## Example
    ```python
    ref_model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    with torch.no_grad():
        ref_logps = F.log_softmax(ref_model(ids).logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logps = F.log_softmax(policy(ids).logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)
    kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1
    ```

    ## Fix
    Compute both log-probs the same way, in float32: cast the logits before the log-softmax on
    both paths (`F.log_softmax(logits.float(), dim=-1)`), or run both under the same autocast
    region. Casting the bf16 term after its log-softmax does not help: the rounding already
    happened.
    """

    CODE = "MP005"
    NAME = "logprob-precision-mismatch"
    MESSAGE = (
        "log-probs computed in different precisions are subtracted: `{left}` is {left_dtype} ({left_origin}) "
        "and `{right}` is {right_dtype} ({right_origin}); for identical policies the ratio is not 1 "
        "(a bf16 log-prob of -6 is off by up to 0.016): compute both log_softmaxes in float32"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    # The subtraction may sit in a loss helper that names no dtype and no log-softmax (`logps`,
    # `logprobs`). `exp(` would gate the same helpers but makes 4% more of torch/'s files roots;
    # `logp`, 0.4% (and a helper whose log-probs are `log_probs` is not visited: a miss, not a
    # false alarm).
    SINKS = frozenset({"log_softmax", "logsumexp", "logp"})
    VALID = (
        """
import torch
import torch.nn.functional as F
policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
new = F.log_softmax(policy(x).float(), dim=-1)
with torch.no_grad():
    old = F.log_softmax(policy(x).float(), dim=-1)
ratio = torch.exp(new - old)
""",
    )
    INVALID = (
        """
import torch
import torch.nn.functional as F
policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
new = F.log_softmax(policy(x).float(), dim=-1)
with torch.no_grad():
    old = F.log_softmax(policy(x), dim=-1)
ratio = torch.exp(new - old)
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        # (line, left, right) of the differences reported: the k3 KL estimate writes the same one twice.
        self._reported: set[tuple[int, str, str]] = set()

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if not isinstance(node.operator, cst.Subtract):
            return
        for fact in self.precision.operations(node, conditional=True):
            if _mismatched(fact.left, fact.right):
                # Where and as what it is written only now: positions cost a pass over the file.
                written = (self.line_of(node), self.source_of(node.left), self.source_of(node.right))
                if written not in self._reported:
                    self._reported.add(written)
                    self.report(node, self._message(node, fact), condition=fact.condition)
                return

    def _message(self, node: cst.BinaryOperation, fact: OperationFact) -> str:
        return self.MESSAGE.format(
            left=self.source_of(node.left),
            left_dtype=fact.left.precision.value,
            left_origin=self._origin(fact.left, fact),
            right=self.source_of(node.right),
            right_dtype=fact.right.precision.value,
            right_origin=self._origin(fact.right, fact),
        )

    def _origin(self, logprobs: Value, fact: OperationFact) -> str:
        """Where a term's precision came from: its half origin, or the autocast region that ran
        its log-softmax in fp32."""
        if logprobs.precision.is_low:
            return self.describe_origin(logprobs.origin, fact.chain)
        region = logprobs.region
        if region is not None and torch_api.region_upcasts(region, torch_api.LOG_PROB_OP):
            line = self.line_of(region.node, region.path)
            return f"log_softmax upcast by the {region.describe()} at {region.path}:{line}"
        return "computed in float32"


def _mismatched(left: Value, right: Value) -> bool:
    """Both are log-probs of known, different precisions, one of them half."""
    if left.op != torch_api.LOG_PROB_OP or right.op != torch_api.LOG_PROB_OP:
        return False
    if Precision.UNKNOWN in (left.precision, right.precision) or left.precision is right.precision:
        return False
    if left.precision.is_low and right.precision.is_low:
        return Precision.HALF not in (left.precision, right.precision)  # bf16 against fp16
    return left.precision.is_low or right.precision.is_low
