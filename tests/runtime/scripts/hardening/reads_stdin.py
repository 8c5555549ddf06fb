"""Reads its learning rate from stdin, as a script driven by a scheduler's pipe does."""

import sys

import torch
import torch.nn.functional as F
from torch import nn

lr = float(sys.stdin.readline())
policy = nn.Linear(8, 8).to(torch.bfloat16)
optimizer = torch.optim.SGD(policy.parameters(), lr=lr)
for _ in range(3):
    logits = policy(torch.randn(4, 8, dtype=torch.bfloat16))
    logp = F.log_softmax(logits, dim=-1)  # MP001
    loss = -logp.float().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
