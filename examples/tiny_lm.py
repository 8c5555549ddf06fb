"""A tiny causal language model for the examples: small enough to train a few steps on a CPU.

It stands in for the Hugging Face model a real script would load with `from_pretrained`;
the examples build it inline so they run offline in a couple of seconds.
"""

from __future__ import annotations

import torch
from torch import nn


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int = 128, d_model: int = 64, n_layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_model)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(d_model),
                nn.Linear(d_model, 4 * d_model),
                nn.GELU(),
                nn.Linear(4 * d_model, d_model),
            )
            for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(tokens)
        # A causal running mean stands in for attention: each position sees only its past.
        steps = torch.arange(1, tokens.shape[1] + 1, device=tokens.device).view(1, -1, 1)
        for block in self.blocks:
            context = hidden.cumsum(dim=1) / steps
            hidden = hidden + block(context)
        return self.lm_head(self.norm(hidden))
