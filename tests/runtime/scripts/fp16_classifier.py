"""The standard fp16 AMP classifier step: mean-reduced cross_entropy under CUDA autocast, scaled."""

import torch
import torch.nn.functional as F
from torch import nn

model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10)).to("cuda")
optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
scaler = torch.amp.GradScaler("cuda")

for _ in range(4):
    inputs = torch.randn(16, 32, device="cuda")
    labels = torch.randint(0, 10, (16,), device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        loss = F.cross_entropy(model(inputs), labels)  # its inner log_softmax runs in fp16 on CUDA
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
