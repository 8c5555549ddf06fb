"""GRPO-style RL fine-tuning of a bfloat16 policy, with the two classic precision bugs of RL.

`mplint examples/rl_finetune.py` reports:

- MP001 at `F.log_softmax` in `token_logprobs`: the policy was cast to bfloat16, so its logits
  and the per-token log-probs are bf16 (8 bits of mantissa). `exp(logp - old_logp)` of two such
  values is off by up to ~1% per token even when the policy has not moved, so the PPO ratio and
  its clipping act on rounding noise instead of on the policy change.
- MP003 at `torch.optim.AdamW`: the optimizer updates bf16 weights and keeps bf16 moments; an
  update smaller than 1/256 of a weight rounds away, so fine-tuning quietly stalls.

train_clean.py is the fixed version: fp32 master weights, autocast, `.float()` logits.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from tiny_lm import TinyLM
from toy_task import PROMPT_LEN, VOCAB_SIZE, rewards_and_advantages, sample_completions


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token in `tokens` under the aligned `logits`."""
    return F.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # expect: MP001


def main() -> None:
    parser = argparse.ArgumentParser(description="GRPO fine-tuning of a bf16 policy")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-prompts", type=int, default=4)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--clip", type=float, default=0.2)
    args = parser.parse_args()
    torch.manual_seed(0)

    policy = TinyLM(VOCAB_SIZE).to(torch.bfloat16)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4, weight_decay=0.0)  # expect: MP003

    for step in range(args.steps):
        prompts = torch.randint(0, VOCAB_SIZE, (args.batch_prompts, PROMPT_LEN))
        sequences = sample_completions(policy, prompts)
        completions = sequences[:, PROMPT_LEN:]
        rewards, advantages = rewards_and_advantages(completions)
        with torch.no_grad():
            old_logp = token_logprobs(policy(sequences)[:, PROMPT_LEN - 1 : -1], completions)

        for _ in range(args.ppo_epochs):
            logits = policy(sequences)[:, PROMPT_LEN - 1 : -1]
            logp = token_logprobs(logits, completions)
            ratio = torch.exp(logp - old_logp)
            clipped = torch.clamp(ratio, 1 - args.clip, 1 + args.clip)
            loss = -torch.min(ratio * advantages, clipped * advantages).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        print(f"step {step}: reward {rewards.mean().item():.3f} loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
