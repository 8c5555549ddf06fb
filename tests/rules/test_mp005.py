"""MP005 logprob-precision-mismatch: two log-probs of different precisions subtracted (a ratio, a KL).

Reported at the subtraction. Torch facts (torch 2.13, checked in tests/runtime/test_catalog_claims.py):
for the same logits, a bf16 log_softmax differs from the fp32 one by up to ~0.016 near -4, so the
ratio of identical policies is off by up to ~1.6%; a bf16 log-prob cast to fp32 after the
log_softmax holds the same values as the bf16 one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, lint, ok

CODE = "MP005"

# The policy's bf16 logits plus an fp32 mask of the tokens it may not emit: torch promotes the sum
# to fp32, so the policy's log-probs are fp32 against the bf16 reference's.
MASKED_POLICY_AGAINST_BF16_REFERENCE = """
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16).cuda()
    ref = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16).cuda()
    vocab_mask = torch.zeros(50257, device="cuda")


    def masked_logps(model, ids, mask):
        logits = model(ids).logits + mask
        return F.log_softmax(logits, dim=-1)


    with torch.no_grad():
        ref_logps = F.log_softmax(ref(ids).logits, dim=-1)
    logps = masked_logps(policy, ids, vocab_mask)
    kl = torch.exp(ref_logps - logps) - (ref_logps - logps) - 1  # expect: MP005
    """

CASES = [
    bug(
        "grpo-rollout-in-bf16-ref-under-no-grad-policy-under-autocast",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.float32).cuda()
        ref_model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16).cuda()

        def per_token_logps(model, input_ids):
            logits = model(input_ids).logits[:, :-1]
            logps = F.log_softmax(logits, dim=-1)
            return torch.gather(logps, 2, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)

        def grpo_step(input_ids, advantages, beta=0.04):
            with torch.no_grad():
                ref_per_token_logps = per_token_logps(ref_model, input_ids)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                per_token = per_token_logps(policy, input_ids)
            per_token_kl = torch.exp(ref_per_token_logps - per_token) - (ref_per_token_logps - per_token) - 1  # expect: MP005
            return (per_token_kl * beta - advantages.unsqueeze(1)).mean()
        """,
    ),
    bug(
        "ppo-ratio-old-logprobs-from-half-rollout-model",
        """
        import copy
        import torch
        import torch.nn.functional as F

        def rollout_logprobs(model, tokens):
            logits = model(tokens)
            return logits.log_softmax(-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)

        def train(policy, batches, clip=0.2):
            rollout_model = copy.deepcopy(policy).half()
            for tokens, adv in batches:
                with torch.no_grad():
                    old_logprobs = rollout_logprobs(rollout_model, tokens)
                new_logprobs = F.log_softmax(policy(tokens).float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
                ratio = torch.exp(new_logprobs - old_logprobs)  # expect: MP005
                loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
                loss.backward()

        train(torch.nn.Linear(16, 32), [])
        """,
    ),
    bug(
        "method-on-trainer-with-self-models",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        class GRPOTrainer:
            def __init__(self, name):
                self.policy = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float32)
                self.ref = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)

            def logps(self, model, ids):
                return F.log_softmax(model(input_ids=ids).logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)

            def loss(self, ids):
                with torch.no_grad():
                    ref = self.logps(self.ref, ids)
                cur = self.logps(self.policy, ids)
                kl = cur - ref  # expect: MP005
                return kl.mean()

        GRPOTrainer("gpt2").loss(None)
        """,
    ),
    bug(
        "hand-written-selective-log-softmax-and-cpu-autocast",
        """
        import torch

        def selective_log_softmax(logits, index):
            selected = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
            return selected - torch.logsumexp(logits, dim=-1)

        model = torch.nn.Linear(64, 100)
        ids = torch.randint(0, 100, (4,))
        with torch.no_grad():
            old = selective_log_softmax(model(x), ids)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            new = selective_log_softmax(model(x), ids)
        ratio = (new - old).exp()  # expect: MP005
        """,
    ),
    bug(
        "conditional-dtype-from-argparse-default",
        """
        import argparse
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        parser = argparse.ArgumentParser()
        parser.add_argument("--ref_dtype", default="bfloat16")
        args = parser.parse_args()
        dtype = torch.bfloat16 if args.ref_dtype == "bfloat16" else torch.float32

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float32)
        ref = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=dtype)
        ref_logp = F.log_softmax(ref(ids).logits, dim=-1)
        logp = F.log_softmax(policy(ids).logits, dim=-1)
        kl = (logp - ref_logp).sum(-1)  # expect: MP005
        """,
    ),
    bug(
        "dict-items-of-a-rollout-buffer",
        """
        import torch
        import torch.nn.functional as F

        actor = torch.nn.Linear(32, 50).to(torch.bfloat16)
        rollout = {}
        with torch.no_grad():
            rollout["logprobs"] = F.log_softmax(actor(obs), dim=-1).gather(-1, actions).squeeze(-1)
        new_logprobs = F.log_softmax(actor(obs), dim=-1, dtype=torch.float32).gather(-1, actions).squeeze(-1)
        log_ratio = new_logprobs - rollout["logprobs"]  # expect: MP005
        ratio = log_ratio.exp()
        """,
    ),
    bug(
        "fp16-model-against-bf16-reference",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2").half()
        reference = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        with torch.no_grad():
            ref_lp = F.log_softmax(reference(ids).logits, -1)
        lp = F.log_softmax(policy(ids).logits, -1)
        per_token_kl = torch.exp(ref_lp - lp) - (ref_lp - lp) - 1  # expect: MP005
        """,
    ),
    ok(
        "both-cast-to-float-before-log-softmax",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        ref = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)

        def logps(model, ids):
            return F.log_softmax(model(ids).logits.float(), dim=-1).gather(-1, ids[..., None]).squeeze(-1)

        with torch.no_grad():
            ref_logps = logps(ref, ids)
        cur = logps(policy, ids)
        kl = torch.exp(ref_logps - cur) - (ref_logps - cur) - 1
        """,
    ),
    ok(
        "both-bf16-consistent-path",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(64, 100).to(torch.bfloat16)
        with torch.no_grad():
            old = F.log_softmax(policy(x), dim=-1)
        new = F.log_softmax(policy(x), dim=-1)
        ratio = torch.exp(new - old)
        """,
    ),
    ok(
        "bf16-log-prob-cast-after-the-log-softmax-holds-the-same-values",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(64, 100).to(torch.bfloat16)
        with torch.no_grad():
            old_logprobs = F.log_softmax(policy(x), dim=-1).gather(-1, a).squeeze(-1).float()
        new_logprobs = F.log_softmax(policy(x), dim=-1).gather(-1, a).squeeze(-1)
        ratio = torch.exp(new_logprobs - old_logprobs)
        """,
    ),
    ok(
        "rollout-logprobs-from-vllm-are-unknown",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        gen_logps = torch.tensor(batch["gen_logps"])
        per_token_logps = F.log_softmax(policy(ids).logits, dim=-1)
        ratio = torch.exp(per_token_logps - gen_logps)
        """,
    ),
    ok(
        "both-under-the-same-cuda-autocast",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.float32)
        ref = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            with torch.no_grad():
                ref_logps = F.log_softmax(ref(ids).logits, dim=-1)
            logps = F.log_softmax(policy(ids).logits, dim=-1)
        kl = logps - ref_logps
        """,
    ),
    ok(
        "policy-of-unknown-dtype-passed-in",
        """
        import torch
        import torch.nn.functional as F

        def ppo_loss(policy, old_logprobs, obs, actions, adv):
            logprobs = F.log_softmax(policy(obs), dim=-1).gather(-1, actions).squeeze(-1)
            ratio = torch.exp(logprobs - old_logprobs)
            return -(ratio * adv).mean()
        """,
    ),
    ok(
        "softmax-stabilisation-is-not-a-log-prob-difference",
        """
        import torch

        model = torch.nn.Linear(64, 100)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            scores = model(x)
        shifted = torch.exp(scores - scores.float().logsumexp(-1, keepdim=True).float())
        """,
    ),
    bug("masked-bf16-policy-against-a-bf16-reference", MASKED_POLICY_AGAINST_BF16_REFERENCE),
    # A policy loaded in bf16 or fp16 (a flag the caller passes): masked by an fp32 tensor, on
    # either side of the `+`, its log-probs are fp32 whichever it is.
    bug(
        "half-policy-of-either-dtype-masked-on-either-side",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM


        def load(name, use_bf16):
            dtype = torch.bfloat16 if use_bf16 else torch.float16
            return AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype).cuda()


        def kl_penalty(policy, ref, ids, allowed):
            invalid = torch.zeros(policy.config.vocab_size, device="cuda")
            invalid[~allowed] = float("-inf")
            with torch.no_grad():
                ref_logps = F.log_softmax(ref(ids).logits, dim=-1)
            logps = F.log_softmax(policy(ids).logits + invalid, dim=-1)
            masked_first = F.log_softmax(invalid + policy(ids).logits, dim=-1)
            kl = (ref_logps - logps).sum()  # expect: MP005
            kl_masked_first = (ref_logps - masked_first).sum()  # expect: MP005
            return kl + kl_masked_first


        policy = load("gpt2", use_bf16=args.bf16)
        ref = load("gpt2", use_bf16=args.bf16)
        kl_penalty(policy, ref, ids, allowed)
        """,
    ),
    # The reference is one of two bf16 models, chosen by a flag: either way its log-probs are bf16.
    bug(
        "reference-log-probs-from-either-of-two-bf16-models",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.float32).cuda()
        ref_model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16).cuda()
        sft_model = AutoModelForCausalLM.from_pretrained("my-org/sft-0.5B", torch_dtype=torch.bfloat16).cuda()


        def kl_to_reference(ids, use_sft_reference):
            with torch.no_grad():
                if use_sft_reference:
                    ref_logps = F.log_softmax(sft_model(ids).logits, dim=-1)
                else:
                    ref_logps = F.log_softmax(ref_model(ids).logits, dim=-1)
            logps = F.log_softmax(policy(ids).logits, dim=-1)
            return (logps.exp() * (logps - ref_logps)).sum(-1).mean()  # expect: MP005
        """,
    ),
    ok(
        "fp32-against-fp64-reference",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(64, 100)
        reference = torch.nn.Linear(64, 100).double()
        ref_logp = F.log_softmax(reference(x.double()), dim=-1)
        logp = F.log_softmax(policy(x), dim=-1)
        kl = logp - ref_logp
        """,
    ),
    ok(
        "entropy-and-log-prob-minus-a-constant",
        """
        import torch
        import torch.nn.functional as F

        policy = torch.nn.Linear(64, 100).to(torch.bfloat16)
        logp = F.log_softmax(policy(x), dim=-1)
        baseline = torch.zeros(4, dtype=torch.float32)
        centered = logp - 0.5
        advantage = rewards.float() - baseline
        """,
    ),
    # Logits of a policy in bf16 or fp16 plus a bf16 prior's: bf16 or fp32, not known, so no
    # mismatch with the prior's bf16 log-probs can be claimed.
    ok(
        "half-policy-of-either-dtype-plus-a-bf16-prior",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForCausalLM


        def load(name, use_bf16):
            dtype = torch.bfloat16 if use_bf16 else torch.float16
            return AutoModelForCausalLM.from_pretrained(name, torch_dtype=dtype).cuda()


        policy = load("gpt2", use_bf16=args.bf16)
        prior = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16).cuda()
        with torch.no_grad():
            prior_logits = prior(ids).logits
            prior_logps = F.log_softmax(prior_logits, dim=-1)
        logps = F.log_softmax(policy(ids).logits + prior_logits, dim=-1)
        kl = (logps - prior_logps).sum()
        """,
    ),
]

LOSS_HELPER_FILES = {
    "losses.py": """
import torch


def grpo_loss(per_token_logps, old_per_token_logps, advantages, eps=0.2):
    ratio = torch.exp(per_token_logps - old_per_token_logps)  # expect: MP005
    clipped = torch.clamp(ratio, 1 - eps, 1 + eps)
    return -torch.min(ratio * advantages, clipped * advantages).mean()
""",
    "train.py": """
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from losses import grpo_loss

policy = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)


def token_logps(model, ids):
    return F.log_softmax(model(ids).logits, dim=-1).gather(-1, ids[..., None]).squeeze(-1)


def main(batches):
    for ids, advantages in batches:
        with torch.no_grad():
            old = token_logps(policy, ids)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            new = token_logps(policy, ids)
        grpo_loss(new, old, advantages).backward()


main([])
""",
}


@pytest.mark.parametrize("source", CASES)
def test_cases(source: str) -> None:
    check(source, CODE)


def test_loss_helper_in_another_file(tmp_path: Path) -> None:
    check_files(LOSS_HELPER_FILES, CODE, tmp_path)


def test_message_names_both_terms_their_dtypes_and_origins() -> None:
    source = CASES[0].values[0]
    assert isinstance(source, str)
    (finding,) = lint(source, CODE)
    assert "`ref_per_token_logps` is bfloat16 (from `ref_model`, loaded in bfloat16 at train.py:7" in finding.message
    assert "`per_token` is float32 (log_softmax upcast by the cuda bfloat16 autocast at train.py:17)" in finding.message


def test_message_names_the_masked_log_probs_float32() -> None:
    """bf16 logits plus an fp32 mask are fp32 (torch's promotion), not float64 nor unknown."""
    (finding,) = lint(MASKED_POLICY_AGAINST_BF16_REFERENCE, CODE)
    assert "`logps` is float32 (computed in float32)" in finding.message


def test_non_default_dtype_is_a_warning_naming_the_condition() -> None:
    source = """
    import argparse
    import torch
    import torch.nn.functional as F

    parser = argparse.ArgumentParser()
    parser.add_argument("--bf16_ref", action="store_true")
    args = parser.parse_args()
    policy = torch.nn.Linear(64, 100)
    ref = torch.nn.Linear(64, 100)
    if args.bf16_ref:
        ref = ref.to(torch.bfloat16)
        ref_logp = F.log_softmax(ref(x), dim=-1)
        kl = F.log_softmax(policy(x), dim=-1) - ref_logp
    """
    (finding,) = lint(source, CODE)
    assert finding.severity.value == "warning"
    assert "only when `args.bf16_ref` is true" in finding.message
