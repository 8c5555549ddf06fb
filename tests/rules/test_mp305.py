"""MP305 bf16-gradient-reduction: FSDP reduces gradients in bfloat16.

Reported at the policy. torch 2.13's docs: `MixedPrecision.reduce_dtype=None` with a
`param_dtype` "takes on the param_dtype value"; `MixedPrecisionPolicy.reduce_dtype=None` with a
`param_dtype` "uses the compute dtype".
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP305"

CASES = [
    bug(
        "llama-recipes-bf16-policy",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecision

        bfSixteen = MixedPrecision(  # expect: MP305
            param_dtype=torch.bfloat16,
            # Gradient communication precision.
            reduce_dtype=torch.bfloat16,
            # Buffer precision.
            buffer_dtype=torch.bfloat16,
            cast_forward_inputs=True,
        )
    """,
    ),
    bug(
        "fp32-params-bf16-reduce",
        """
        import torch
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, MixedPrecision

        model = FSDP(
            model,
            mixed_precision=MixedPrecision(param_dtype=torch.float32, reduce_dtype=torch.bfloat16),  # expect: MP305
            device_id=torch.cuda.current_device(),
        )
    """,
    ),
    bug(
        "reduce-dtype-defaults-to-param-dtype",
        """
        import torch
        import torch.distributed.fsdp as fsdp

        policy = fsdp.MixedPrecision(param_dtype=torch.bfloat16, buffer_dtype=torch.bfloat16)  # expect: MP305
    """,
    ),
    bug(
        "fsdp2-policy-in-loop",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp_policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.bfloat16)  # expect: MP305
        for block in model.layers:
            fully_shard(block, mp_policy=mp_policy)
        fully_shard(model, mp_policy=mp_policy)
    """,
    ),
    bug(
        "fsdp2-composable-path-param-only",
        """
        import torch
        from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard

        fully_shard(model, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16))  # expect: MP305
    """,
    ),
    bug(
        "dtype-through-a-name-positional",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecision

        compute_dtype = torch.bfloat16
        policy = MixedPrecision(compute_dtype, compute_dtype, compute_dtype)  # expect: MP305
    """,
    ),
    # `reduce_dtype=None` written out is the default: it takes on param_dtype.
    bug(
        "reduce-dtype-none-spelled-out",
        """
        import torch
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp import MixedPrecision

        def wrap(model, rank):
            policy = MixedPrecision(  # expect: MP305
                param_dtype=torch.bfloat16, reduce_dtype=None, buffer_dtype=torch.bfloat16
            )
            return FSDP(model, mixed_precision=policy, device_id=rank)
    """,
    ),
    ok(
        "reduce-in-fp32",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecision

        policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16)
    """,
    ),
    ok(
        "fsdp2-reduce-in-fp32",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        fully_shard(model, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32))
    """,
    ),
    ok(
        "no-param-dtype",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecision

        policy = MixedPrecision(buffer_dtype=torch.bfloat16)
    """,
    ),
    ok(
        "dtype-from-config",
        """
        from torch.distributed.fsdp import MixedPrecision

        policy = MixedPrecision(param_dtype=cfg.param_dtype, reduce_dtype=cfg.reduce_dtype)
    """,
    ),
    ok(
        "fp32-everything",
        """
        import torch
        from torch.distributed.fsdp import MixedPrecision

        fp32_policy = MixedPrecision(param_dtype=torch.float32, reduce_dtype=torch.float32, buffer_dtype=torch.float32)
    """,
    ),
    ok(
        "someone-elses-mixed-precision",
        """
        import torch
        from lightning.pytorch.plugins import MixedPrecision

        plugin = MixedPrecision(precision="bf16-mixed", device="cuda")
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_case(source: str) -> None:
    check(source, CODE)


def test_message_names_the_policy_and_why_the_dtype() -> None:
    (finding,) = lint(
        """
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        fully_shard(model, mp_policy=MixedPrecisionPolicy(param_dtype=torch.bfloat16))
        """,
        CODE,
    )
    assert finding.message.startswith("MixedPrecisionPolicy reduces gradients across ranks in bfloat16")
    assert "(no reduce_dtype: it defaults to param_dtype)" in finding.message
