"""A bf16 policy whose log-probs are taken without a cast (MP001 at the log_softmax line)."""

import torch
import torch.nn.functional as F
from torch import nn

policy = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).to(torch.bfloat16)
optimizer = torch.optim.SGD(policy.parameters(), lr=1e-2)

for _ in range(10):
    observations = torch.randn(8, 16, dtype=torch.bfloat16)
    actions = torch.randint(0, 4, (8,))
    logp = F.log_softmax(policy(observations), dim=-1)  # MP001
    loss = -logp.gather(1, actions[:, None]).float().mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
