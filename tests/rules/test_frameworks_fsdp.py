"""FSDP and FSDP2 mixed precision in the precision model (pytorch torch/distributed/fsdp/api.py
`MixedPrecision`, torch/distributed/_composable/fsdp/_fsdp_api.py `MixedPrecisionPolicy`): the
forward computes in `param_dtype` (outputs too, unless FSDP2's `output_dtype` casts them); the
optimizer steps the sharded parameters in their original dtype."""

from __future__ import annotations

import pytest

from .casekit import check, line_of, lint

FSDP1 = """
    import functools
    import torch
    import torch.nn.functional as F
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, MixedPrecision
    from transformers import AutoModelForCausalLM

    bf16_policy = MixedPrecision(param_dtype={param}, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float32)
    model = FSDP(model, mixed_precision=bf16_policy, device_id=torch.cuda.current_device())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for batch in loader:
        logits = model(input_ids=batch["input_ids"]).logits
        loss = -F.log_softmax(logits, dim=-1).mean(){expect}
        loss.backward()
        optimizer.step()
"""

FSDP2 = """
    import torch
    import torch.nn.functional as F
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32{output})
    model = fully_shard(build_model(), mp_policy=mp)
    net = fully_shard(torch.nn.Linear(512, 32000), mp_policy=mp)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    logits = net(torch.randn(8, 512, device="cuda"))
    logps = F.log_softmax(logits, dim=-1){expect}
"""


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(FSDP1.format(param="torch.bfloat16", expect="  # expect: MP001"), id="fsdp1-bf16-compute"),
        pytest.param(FSDP1.format(param="torch.float32", expect=""), id="fsdp1-fp32-compute"),
        pytest.param(FSDP1.format(param="args.dtype", expect=""), id="fsdp1-unknown-dtype"),
        pytest.param(FSDP2.format(output="", expect="  # expect: MP001"), id="fsdp2-bf16-outputs"),
        pytest.param(FSDP2.format(output=", output_dtype=torch.float32", expect=""), id="fsdp2-fp32-output-dtype"),
    ],
)
def test_sharded_outputs(source: str) -> None:
    check(source, "MP001")


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(FSDP1.format(param="torch.bfloat16", expect=""), id="fsdp1-fp32-shards"),
        pytest.param(FSDP2.format(output="", expect=""), id="fsdp2-fp32-shards"),
    ],
)
def test_the_sharded_parameters_keep_their_dtype(source: str) -> None:
    check(source, "MP003")


# A bf16 model under FSDP2 with only `output_dtype`: it computes in bf16, its outputs come out fp32.
FSDP2_OUTPUTS_ONLY = """
    import torch
    import torch.nn.functional as F
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
    model = fully_shard(model, mp_policy=MixedPrecisionPolicy({policy}))
    logps = F.log_softmax(model(input_ids).logits, dim=-1){expect}
"""

# torchtitan's form: `fully_shard` shards in place, its result unused (the blocks first, then the root).
FSDP2_IN_PLACE = """
    import torch
    import torch.nn.functional as F
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import AutoModelForCausalLM


    def parallelize(model, param_dtype, output_dtype):
        mp_policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32, output_dtype=output_dtype)
        for block in model.model.layers:
            fully_shard(block, mp_policy=mp_policy)
        fully_shard(model, mp_policy=mp_policy)
        return model


    model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype={load})
    model = parallelize(model, torch.bfloat16, {output})
    logps = F.log_softmax(model(input_ids).logits, dim=-1){expect}
"""

# A model of the project under FSDP1's bf16 policy: its layers compute in bf16, and what its own
# forward returns is what the caller gets (MixedPrecision casts no outputs).
FSDP1_LINTED_FORWARD = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, MixedPrecision


    class GPT(nn.Module):
        def __init__(self, vocab_size, dim):
            super().__init__()
            self.embed = nn.Embedding(vocab_size, dim)
            self.lm_head = nn.Linear(dim, vocab_size, bias=False)

        def forward(self, idx):
            logits = self.lm_head(self.embed(idx))
            return logits{upcast}


    policy = MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16)
    model = FSDP(GPT(50304, 768), mixed_precision=policy)
    logps = F.log_softmax(model(tokens), dim=-1){expect}
"""

# A bf16 model under FSDP1 with a policy dtype read from the run's config: not known here.
FSDP1_DTYPE_FROM_CONFIG = """
    import torch
    import torch.nn.functional as F
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP, MixedPrecision
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
    policy = MixedPrecision(param_dtype=getattr(torch, cfg.param_dtype), reduce_dtype=torch.float32)
    model = FSDP(model, mixed_precision=policy)
    logps = F.log_softmax(model(input_ids).logits, dim=-1)
"""


@pytest.mark.parametrize(
    "source",
    [
        # FSDP1's third positional parameter is `buffer_dtype`, no output dtype.
        pytest.param(
            FSDP1.format(param="torch.bfloat16", expect="  # expect: MP001").replace(
                "MixedPrecision(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, buffer_dtype=torch.bfloat16)",
                "MixedPrecision(torch.bfloat16, torch.float32, torch.float32)",
            ),
            id="positional-policy",
        ),
        pytest.param(FSDP2_OUTPUTS_ONLY.format(policy="output_dtype=torch.float32", expect=""), id="fsdp2-output-dtype-only"),
        pytest.param(
            FSDP2_OUTPUTS_ONLY.format(
                policy="param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=None", expect="  # expect: MP001"
            ),
            id="fsdp2-output-dtype-none-as-documented",
        ),
        pytest.param(FSDP1_DTYPE_FROM_CONFIG, id="fsdp1-policy-dtype-from-config"),
        pytest.param(FSDP1_LINTED_FORWARD.format(upcast=".float()", expect=""), id="fsdp1-forward-upcasts"),
        pytest.param(
            FSDP1_LINTED_FORWARD.format(upcast="", expect="  # expect: MP001"), id="fsdp1-forward-in-compute-dtype"
        ),
        pytest.param(
            FSDP2_IN_PLACE.format(load="torch.float32", output="None", expect="  # expect: MP001"),
            id="fsdp2-in-place-bf16-outputs",
        ),
        pytest.param(
            FSDP2_IN_PLACE.format(load="torch.bfloat16", output="torch.float32", expect=""),
            id="fsdp2-in-place-fp32-output-dtype",
        ),
    ],
)
def test_what_a_policy_does_to_the_forward(source: str) -> None:
    check(source, "MP001")


def test_the_message_names_the_policy() -> None:
    source = FSDP1.format(param="torch.bfloat16", expect="")
    [finding] = lint(source, "MP001")
    assert f"computed under FSDP's mixed precision at train.py:{line_of(source, 'model = FSDP(')}" in finding.message


# FSDP of another library than torch (fairscale's, fairseq and metaseq shard with it): without a
# mixed precision option it computes in the model's own dtype; with one (fairscale's
# `mixed_precision=True` computes in `compute_dtype`, fairscale/nn/data_parallel/
# fully_sharded_data_parallel.py `_init_param_attributes`) the dtype is not modelled here: unknown.
FAIRSCALE = """
    import torch
    import torch.nn.functional as F
    from fairscale.nn import FullyShardedDataParallel as FSDP
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained("facebook/opt-1.3b", torch_dtype=torch.float16)
    model = FSDP(model{options})
    logps = F.log_softmax(model(input_ids).logits, dim=-1){expect}
"""

# `fully_shard` re-exported by a module outside the run, given a policy built there: unknown too.
SHARDED_ELSEWHERE = """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    from parallel_dims import fully_shard, mixed_precision_policy

    model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
    model = fully_shard(model, mp_policy=mixed_precision_policy(job_config))
    logps = F.log_softmax(model(input_ids).logits, dim=-1)
"""


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(FAIRSCALE.format(options="", expect="  # expect: MP001"), id="fairscale-no-mixed-precision"),
        pytest.param(
            FAIRSCALE.format(options=", mixed_precision=True, compute_dtype=torch.float32", expect=""),
            id="fairscale-mixed-precision",
        ),
        pytest.param(SHARDED_ELSEWHERE, id="fully-shard-of-a-module-outside-the-run"),
    ],
)
def test_sharded_by_another_library(source: str) -> None:
    check(source, "MP001")


# llama-recipes' finetuning.py: `pure_bf16` casts the model before FSDP wraps it with no mixed
# precision policy (`mixed_precision=None`, picked by a conditional expression on the same option):
# the shards are the bf16 parameters, and AdamW steps them with no fp32 master weights.
PURE_BF16 = """
    from dataclasses import dataclass

    import torch
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    from llama_cookbook.policies import get_policies
    from transformers import LlamaForCausalLM


    @dataclass
    class TrainConfig:
        enable_fsdp: bool = False
        pure_bf16: bool = False
        lr: float = 1e-4


    def main(train_config):
        if train_config.enable_fsdp:
            torch.distributed.init_process_group("nccl")
        model = LlamaForCausalLM.from_pretrained("meta-llama/Llama-3.1-8B")
        if train_config.enable_fsdp and train_config.pure_bf16:
            model.to(torch.bfloat16)
        if train_config.enable_fsdp:
            policy = get_policies(train_config)
            model = FSDP(model, mixed_precision={policy})
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.lr){expect}
        for batch in loader:
            model(**batch).loss.backward()
            optimizer.step()


    if __name__ == "__main__":
        main(TrainConfig())
"""


@pytest.mark.parametrize(
    ("cast", "policy", "expect"),
    [
        pytest.param("torch.bfloat16", "policy if not train_config.pure_bf16 else None", "  # expect: MP003", id="pure"),
        # fp32 on that path: FSDP shards and steps the fp32 parameters as they are.
        pytest.param("torch.float32", "policy if not train_config.pure_bf16 else None", "", id="fp32-shards"),
        # No policy on any path: the bf16 parameters are sharded and stepped as they are.
        pytest.param("torch.bfloat16", "None", "  # expect: MP003", id="no-policy-ever"),
    ],
)
def test_fsdp_without_a_policy_steps_the_parameters_as_they_are(cast: str, policy: str, expect: str) -> None:
    check(PURE_BF16.replace("model.to(torch.bfloat16)", f"model.to({cast})").format(policy=policy, expect=expect), "MP003")
