"""Interrupted by Ctrl-C after one step, inside a CPU autocast region."""

import torch
from torch import nn

model = nn.Linear(8, 8)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with torch.autocast("cpu", dtype=torch.bfloat16):
    loss = model(torch.randn(4, 8)).float().sum()
    loss.backward()
    optimizer.step()
    raise KeyboardInterrupt
