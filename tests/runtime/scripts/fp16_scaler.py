"""The fp16 recipe done right, written for CUDA with the older torch.cuda.amp spellings."""

import torch
from torch import nn

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
scaler = torch.cuda.amp.GradScaler(init_scale=2.0**10)

for _ in range(20):
    inputs = torch.randn(16, 32, device=device)
    targets = torch.randn(16, 1, device=device)
    with torch.cuda.amp.autocast():  # autocast
        predictions = model(inputs)
    loss = 1e-4 * (predictions.float() - targets).pow(2).mean()
    optimizer.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
