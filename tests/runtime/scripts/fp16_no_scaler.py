"""fp16 autocast without a GradScaler: small gradients underflow in the fp16 backward."""

import torch
from torch import nn

model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

for _ in range(10):
    inputs = torch.randn(16, 32).cuda()
    targets = torch.randn(16, 1).cuda()
    with torch.autocast(device_type="cuda", dtype=torch.float16):  # MP002
        predictions = model(inputs)
    # A loss on a small scale, as with a long sum of tiny per-token terms.
    loss = 1e-4 * (predictions.float() - targets).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
