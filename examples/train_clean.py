"""The fixed version of rl_finetune.py and train_fp16.py: mplint reports nothing here.

- fp32 master weights: the policy stays float32 and autocast runs its matmuls in low
  precision, so AdamW updates fp32 weights with fp32 moments (no MP003).
- `.float()` before `log_softmax`: per-token log-probs and the PPO ratio are computed in fp32
  whichever device autocast runs on (CPU autocast does not upcast log_softmax) (no MP001).
- bf16 autocast by default; `--precision fp16` scales the loss with a GradScaler so small
  gradients survive the fp16 backward (no MP002). The scaler is a no-op for bf16.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from tiny_lm import TinyLM
from toy_task import PROMPT_LEN, VOCAB_SIZE, rewards_and_advantages, sample_completions


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token in `tokens` under the aligned `logits`, in fp32."""
    return F.log_softmax(logits.float(), -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def main() -> None:
    parser = argparse.ArgumentParser(description="GRPO fine-tuning with fp32 master weights")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-prompts", type=int, default=4)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--clip", type=float, default=0.2)
    parser.add_argument("--precision", choices=["bf16", "fp16"], default="bf16")
    args = parser.parse_args()
    torch.manual_seed(0)

    device_type = "cuda" if torch.cuda.is_available() else "cpu"
    amp_dtype = torch.float16 if args.precision == "fp16" else torch.bfloat16
    policy = TinyLM(VOCAB_SIZE).to(device_type)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4, weight_decay=0.0)
    scaler = torch.amp.GradScaler(device_type, enabled=amp_dtype == torch.float16)

    for step in range(args.steps):
        prompts = torch.randint(0, VOCAB_SIZE, (args.batch_prompts, PROMPT_LEN), device=device_type)
        sequences = sample_completions(policy, prompts)
        completions = sequences[:, PROMPT_LEN:]
        rewards, advantages = rewards_and_advantages(completions)
        with torch.no_grad(), torch.autocast(device_type, dtype=amp_dtype):
            old_logp = token_logprobs(policy(sequences)[:, PROMPT_LEN - 1 : -1], completions)

        for _ in range(args.ppo_epochs):
            with torch.autocast(device_type, dtype=amp_dtype):
                logits = policy(sequences)[:, PROMPT_LEN - 1 : -1]
            logp = token_logprobs(logits, completions)
            ratio = torch.exp(logp - old_logp)
            clipped = torch.clamp(ratio, 1 - args.clip, 1 + args.clip)
            loss = -torch.min(ratio * advantages, clipped * advantages).mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        print(f"step {step}: reward {rewards.mean().item():.3f} loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
