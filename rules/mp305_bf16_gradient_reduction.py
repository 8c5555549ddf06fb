from __future__ import annotations

import libcst as cst

from mplint.analysis.facts import CallFact
from mplint.analysis.values import Precision, is_none
from mplint.rule import Rule

# FSDP's policy classes, by every public path torch 2.x exports them under: (param_dtype, reduce_dtype)
# are the first two fields of both.
_POLICIES = frozenset(
    {
        "torch.distributed.fsdp.MixedPrecision",
        "torch.distributed.fsdp.api.MixedPrecision",
        "torch.distributed.fsdp.fully_sharded_data_parallel.MixedPrecision",
        "torch.distributed.fsdp.MixedPrecisionPolicy",
        "torch.distributed.fsdp._fully_shard.MixedPrecisionPolicy",
        "torch.distributed.fsdp._fully_shard._fsdp_api.MixedPrecisionPolicy",
        "torch.distributed._composable.fsdp.MixedPrecisionPolicy",
    }
)


class Bf16GradientReduction(Rule):
    """FSDP reduces gradients across ranks in bfloat16.

    ## What it does
    Finds FSDP mixed-precision policies whose gradient reduction runs in bfloat16:
    `MixedPrecision(reduce_dtype=torch.bfloat16)` (FSDP1) and
    `MixedPrecisionPolicy(reduce_dtype=torch.bfloat16)` (FSDP2, `fully_shard`), and either one
    with `param_dtype=torch.bfloat16` and no `reduce_dtype`: torch's docs for both say that a
    `reduce_dtype` of `None` with a `param_dtype` set reduces in that low dtype ("this takes on the
    `param_dtype` value, still running gradient reduction in low precision" for `MixedPrecision`;
    "the reduction uses the compute dtype" for `MixedPrecisionPolicy`, torch 2.13's
    `torch/distributed/fsdp/api.py` and `_fully_shard/_fsdp_api.py`). Reported at the policy.

    Not reported: `reduce_dtype=torch.float32` (the recommended setting, whatever `param_dtype`
    is), dtypes that come from a config, and frameworks that build the policy for you.

    ## Why is this bad
    bfloat16 keeps 8 bits of mantissa. A reduce-scatter adds every rank's gradient shard (and
    FSDP divides by the world size around it) in the reduce dtype: each partial sum is rounded
    to ~3 significant digits, so small gradients are absorbed by large ones and the error grows
    with the number of ranks. With gradient accumulation under `no_sync`/`set_requires_gradient_sync(False)`,
    FSDP2 also accumulates the gradients in `reduce_dtype`. The optimizer then steps on noisy
    gradients: loss curves diverge from the fp32-reduced run at scale. Production recipes
    (torchtitan's `mixed_precision_reduce="float32"`, OLMo's "mixed" FSDP precision) reduce in fp32.

    ## Example
    ```python
    policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16, buffer_dtype=torch.bfloat16)
    model = FSDP(model, mixed_precision=policy)
    ```

    ## Fix
    Compute in bf16, reduce in fp32:
    ```python
    policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16)
    fully_shard(block, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32))
    ```
    The fp32 reduce-scatter moves twice the bytes of a bf16 one.
    """

    CODE = "MP305"
    NAME = "bf16-gradient-reduction"
    MESSAGE = (
        "{policy} reduces gradients across ranks in {dtype}{why}: each partial sum keeps ~3 significant digits "
        "and small gradients are lost; pass reduce_dtype=torch.float32"
    )
    TRIGGERS = frozenset({"MixedPrecision"})
    VALID = (
        """
import torch
from torch.distributed.fsdp import MixedPrecision
policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16)
""",
    )
    INVALID = (
        """
import torch
from torch.distributed.fsdp import MixedPrecision
policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16, buffer_dtype=torch.bfloat16)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            message = self._message(fact)
            if message is not None:
                self.report(node, message)
                return

    def _message(self, fact: CallFact) -> str | None:
        if fact.function not in _POLICIES:
            return None
        reduce_dtype = fact.arg(1, "reduce_dtype")
        why = ""
        if reduce_dtype is None or is_none(reduce_dtype):
            reduce_dtype = fact.arg(0, "param_dtype")
            why = " (no reduce_dtype: it defaults to param_dtype)"
        if reduce_dtype is None or reduce_dtype.precision not in (Precision.BF16, Precision.HALF):
            return None
        policy = str(fact.function).rpartition(".")[2]  # one of _POLICIES
        return self.MESSAGE.format(policy=policy, dtype=reduce_dtype.precision.value, why=why)
