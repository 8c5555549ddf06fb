"""The fp16 recipe with the GradScaler built first, before the model is placed on the GPU."""

import torch
from torch import nn

scaler = torch.amp.GradScaler("cuda")
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)

for _ in range(20):
    inputs, targets = torch.randn(16, 32).cuda(), torch.randn(16, 1).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = (model(inputs).float() - targets).pow(2).mean()
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
