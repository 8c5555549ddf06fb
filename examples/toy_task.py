"""The toy data and reward the examples train on, so each example shows only its precision story.

Token ids are random (no datasets, no downloads). The RL reward is how often a completion
says `TARGET_TOKEN`; advantages are normalised within each group of completions of one prompt,
as GRPO does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

VOCAB_SIZE = 128
PROMPT_LEN, COMPLETION_LEN = 8, 12
GROUP_SIZE = 4
TARGET_TOKEN = 7


def random_batch(
    batch_size: int, seq_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and their next-token targets, standing in for a tokenised corpus."""
    tokens = torch.randint(0, VOCAB_SIZE, (batch_size, seq_len + 1), device=device)
    return tokens[:, :-1], tokens[:, 1:]


@torch.no_grad()
def sample_completions(policy: nn.Module, prompts: torch.Tensor) -> torch.Tensor:
    """`GROUP_SIZE` sampled completions per prompt, returned with their prompts."""
    sequences = prompts.repeat_interleave(GROUP_SIZE, dim=0)
    for _ in range(COMPLETION_LEN):
        next_logits = policy(sequences)[:, -1].float()
        next_token = torch.multinomial(F.softmax(next_logits, dim=-1), num_samples=1)
        sequences = torch.cat([sequences, next_token], dim=1)
    return sequences


def rewards_and_advantages(completions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rewards = (completions == TARGET_TOKEN).float().mean(dim=1)
    grouped = rewards.view(-1, GROUP_SIZE)
    spread = grouped.std(dim=1, keepdim=True) + 1e-4
    advantages = (grouped - grouped.mean(dim=1, keepdim=True)) / spread
    return rewards, advantages.view(-1, 1)
