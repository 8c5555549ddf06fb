"""Trains a bf16 policy through a helper in another project file."""

import torch
from policy_math import action_log_probs
from torch import nn

policy = nn.Linear(16, 4).to(torch.bfloat16)
optimizer = torch.optim.SGD(policy.parameters(), lr=1e-2)

for _ in range(10):
    logp = action_log_probs(policy(torch.randn(8, 16, dtype=torch.bfloat16)))
    loss = -logp[:, 0].float().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
