"""accelerate in the precision model (accelerate 1.15.0, accelerator.py): a model prepared under
mixed precision runs under autocast and returns fp32 outputs; `mixed_precision="no"` leaves it as it
is; without the argument the launch configuration decides (unknown); `accelerator.autocast()` opens
the accelerator's region; `accelerator.backward` scales fp16 losses; a prepared optimizer keeps
updating the weights it was built over (no fp32 master copy), unless a DeepSpeed plugin's engine
steps it (fp32 masters)."""

from __future__ import annotations

import pytest

from .casekit import check, ok

RL_STEP = """
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM

    accelerator = Accelerator({accelerator_args})
    policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6){optimizer_expect}
    policy, optimizer = accelerator.prepare(policy, optimizer)

    def token_logps(model, input_ids):
        logits = model(input_ids=input_ids).logits[:, :-1]
        logps = F.log_softmax(logits, dim=-1){logps_expect}
        return logps.gather(-1, input_ids[:, 1:, None]).squeeze(-1)

    for batch in loader:
        loss = -(token_logps(policy, batch["input_ids"]) * batch["advantages"]).mean()
        accelerator.backward(loss)
        optimizer.step()
"""


def rl_step(accelerator_args: str, *, logps_bug: bool = False, optimizer_bug: bool = False) -> str:
    return RL_STEP.format(
        accelerator_args=accelerator_args,
        logps_expect="  # expect: MP001" if logps_bug else "",
        optimizer_expect="  # expect: MP003" if optimizer_bug else "",
    )


# Accelerator arguments, and whether the prepared policy's logits stay bf16.
SETTINGS = [
    pytest.param('mixed_precision="bf16"', False, id="bf16-mixed-precision-returns-fp32-logits"),
    pytest.param('mixed_precision="fp16"', False, id="fp16-mixed-precision-returns-fp32-logits"),
    pytest.param("gradient_accumulation_steps=4", False, id="the-launch-configuration-decides"),
    pytest.param('mixed_precision="bf16", deepspeed_plugin=ds_plugin', False, id="a-deepspeed-plugin-decides"),
    pytest.param('mixed_precision="no"', True, id="no-mixed-precision-keeps-the-bf16-logits"),
]


@pytest.mark.parametrize(("accelerator_args", "bf16_logits"), SETTINGS)
def test_a_prepared_model_returns_fp32_outputs_under_mixed_precision(accelerator_args: str, bf16_logits: bool) -> None:
    check(rl_step(accelerator_args, logps_bug=bf16_logits), "MP001")


@pytest.mark.parametrize(
    "accelerator_args", [pytest.param(case.values[0], id=case.id) for case in SETTINGS if "deepspeed" not in case.id]
)
def test_a_prepared_optimizer_keeps_no_master_weights(accelerator_args: str) -> None:
    check(rl_step(accelerator_args, optimizer_bug=True), "MP003")


def test_an_optimizer_prepared_with_a_deepspeed_plugin_steps_fp32_master_weights() -> None:
    # accelerator.py `_prepare_deepspeed` hands the optimizer to `deepspeed.initialize` (finetune-Qwen2-VL's
    # `Accelerator(deepspeed_plugin=DeepSpeedPlugin(zero_stage=3, ...))`).
    check(rl_step('mixed_precision="bf16", deepspeed_plugin=ds_plugin'), "MP003")
    check(rl_step("deepspeed_plugin=DeepSpeedPlugin(zero_stage=3)"), "MP003")


AUTOCAST = [
    ok(
        "fp16-accelerator-scales-its-backward",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="fp16")
        model = torch.nn.Linear(8, 8)
        optimizer = torch.optim.AdamW(model.parameters())
        model, optimizer = accelerator.prepare(model, optimizer)
        for x in loader:
            with accelerator.autocast():
                loss = model(x).sum()
            accelerator.backward(loss)
            optimizer.step()
        """,
    ),
]


@pytest.mark.parametrize("source", AUTOCAST)
def test_an_fp16_accelerator_scales_its_backward(source: str) -> None:
    check(source, "MP002")


def test_a_prepared_peft_model_is_no_module_of_unknown_provenance() -> None:
    """ibrahim1metin/DPO-from-scratch-with-GPT-2: the prepared LoRA policy's logits, computed inside
    `accelerator.autocast()`, come back fp32; the cross-entropy after the block is on fp32 logits."""
    check(
        """
        import torch
        import torch.nn.functional as F
        from accelerate import Accelerator
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        accelerator = Accelerator(mixed_precision="bf16")
        model_tr = get_peft_model(AutoModelForCausalLM.from_pretrained("gpt2-large"), LoraConfig(r=16))

        def forward(batch):
            with accelerator.autocast():
                logits = model_tr(input_ids=batch["input_ids"]).logits
            return F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="none")

        model_tr, optimizer = accelerator.prepare(model_tr, torch.optim.AdamW(model_tr.parameters()))
        for batch in loader:
            accelerator.backward(forward(batch).mean())
        """,
        "MP001",
    )


BACKWARD = [
    pytest.param('mixed_precision="no"', True, id="no-mixed-precision-does-not-scale"),
    pytest.param('mixed_precision="fp16"', False, id="fp16-scales"),
    pytest.param("", False, id="the-launch-decides"),
]


@pytest.mark.parametrize(("accelerator_args", "unscaled"), BACKWARD)
def test_accelerator_backward_is_a_backward_root(accelerator_args: str, unscaled: bool) -> None:
    """The script's own fp16 autocast, its loss handed to `accelerator.backward`: scaled only when
    the accelerator's mixed precision is fp16 (accelerate 1.15.0 `Accelerator.backward`)."""
    marker = "  # expect: MP002" if unscaled else ""
    check(
        f"""
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator({accelerator_args})
        model, optimizer = accelerator.prepare(torch.nn.Linear(8, 8), optimizer)
        for x in loader:
            with torch.autocast("cuda", dtype=torch.float16):{marker}
                loss = model(x).sum()
            accelerator.backward(loss)
            optimizer.step()
        """,
        "MP002",
    )


# alpaca_farm's PPO (rl/ppo_trainer.py, models/rl_models.py, torch_ops.py): the policy's log-probs are
# computed inside its own forward, which the accelerator runs under autocast.
POLICY_FORWARD = """
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM


    def compute_logprobs(logits, labels):
        return {logprobs}


    class Policy(torch.nn.Module):
        def __init__(self, base_model):
            super().__init__()
            self.base_model = base_model

        def forward(self, queries, responses):
            logits = self.base_model(queries).logits[:, :-1]
            return dict(logprobs=compute_logprobs(logits, responses))


    accelerator = Accelerator(mixed_precision={mixed_precision})
    policy = Policy(AutoModelForCausalLM.from_pretrained("huggyllama/llama-7b"))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    policy, optimizer = accelerator.prepare(policy, optimizer)
    for batch in loader:
        logprobs = policy(batch["queries"], batch["responses"])["logprobs"]
        ratio = torch.exp(logprobs - batch["old_logprobs"])
        accelerator.backward(-(ratio * batch["advantages"]).mean())
        optimizer.step()
"""
PER_TOKEN_CROSS_ENTROPY = '-F.cross_entropy(logits.permute(0, 2, 1), labels, reduction="none")'


@pytest.mark.parametrize("mixed_precision", ['"bf16"', '"fp16"'])
def test_a_prepared_models_own_forward_runs_in_the_accelerators_region(mixed_precision: str) -> None:
    # cross_entropy is not on CUDA autocast's fp32 list: its log_softmax keeps the region's dtype.
    logprobs = PER_TOKEN_CROSS_ENTROPY + "  # expect: MP001"
    check(POLICY_FORWARD.format(logprobs=logprobs, mixed_precision=mixed_precision), "MP001")


@pytest.mark.parametrize(
    ("logprobs", "mixed_precision"),
    [
        pytest.param(PER_TOKEN_CROSS_ENTROPY, '"no"', id="no-mixed-precision-keeps-fp32-logits"),
        pytest.param(PER_TOKEN_CROSS_ENTROPY, "args.mixed_precision", id="an-unknown-precision"),
        pytest.param(
            "F.log_softmax(logits, dim=-1).gather(-1, labels[..., None])",
            '"bf16"',
            id="log-softmax-runs-in-fp32-under-cuda-autocast",
        ),
        pytest.param(
            PER_TOKEN_CROSS_ENTROPY.replace("logits.permute", "logits.float().permute"), '"bf16"', id="cast-first"
        ),
    ],
)
def test_a_prepared_forward_is_quiet_where_its_region_keeps_fp32(logprobs: str, mixed_precision: str) -> None:
    ok(POLICY_FORWARD.format(logprobs=logprobs, mixed_precision=mixed_precision), "MP001")


# TRL's PPO-style trainers prepare a wrapper whose forward returns the policy's output beside the
# value head's (`return self.policy(**kwargs), logits`): accelerate converts every tensor of what it
# returns, and the rollout runs the policy itself inside `unwrap_model_for_generation`, in bf16.
POLICY_AND_VALUE = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    from accelerate import Accelerator
    from transformers import AutoModelForCausalLM
    from trl.models.utils import unwrap_model_for_generation


    class PolicyAndValueWrapper(nn.Module):
        def __init__(self, policy, value_head):
            super().__init__()
            self.policy = policy
            self.value_head = value_head

        def forward(self, **kwargs):
            output = self.policy(**kwargs)
            return output, self.value_head(output.hidden_states[-1])


    accelerator = Accelerator({accelerator_args})
    policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-1.5B-Instruct", torch_dtype=torch.bfloat16)
    model = accelerator.prepare(PolicyAndValueWrapper(policy, nn.Linear(1536, 1)))


    def rollout_logps(query_responses):
        with unwrap_model_for_generation(model, accelerator) as unwrapped_model:
            logits = unwrapped_model.policy(input_ids=query_responses).logits
            return F.log_softmax(logits, dim=-1)  # expect: MP001


    def train_logps(query_responses):
        output, values = model(input_ids=query_responses)
        return F.log_softmax(output.logits, dim=-1), values


    for batch in loader:
        old_logps = rollout_logps(batch)
        new_logps, values = train_logps(batch)
"""


@pytest.mark.parametrize("accelerator_args", ['mixed_precision="bf16"', "gradient_accumulation_steps=4"])
def test_a_prepared_wrapper_returns_fp32_outputs_and_its_unwrapped_policy_bf16(accelerator_args: str) -> None:
    check(POLICY_AND_VALUE.format(accelerator_args=accelerator_args), "MP001")
