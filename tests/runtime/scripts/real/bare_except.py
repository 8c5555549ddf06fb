"""A loop that skips bad batches with a bare `except:`, which also catches mplint's stop."""

import torch
import torch.nn.functional as F
from torch import nn

policy = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).to(torch.bfloat16)
optimizer = torch.optim.SGD(policy.parameters(), lr=1e-2)
skipped = 0
for step in range(12):
    try:
        logp = F.log_softmax(policy(torch.randn(8, 16, dtype=torch.bfloat16)), dim=-1)  # MP001
        loss = -logp[:, 0].float().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    except:  # noqa: E722 - "a bad batch", as the script's author thought
        skipped += 1
print(f"skipped {skipped} batches")
