"""Falls back to the CPU when there is no GPU, but its autocast region is written for CUDA (fp16,
no scaler): on a CPU run the region is disabled, so the run cannot tell what CUDA would do."""

import torch
from torch import nn

device = "cuda" if torch.cuda.is_available() else "cpu"
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)).to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
for _ in range(10):
    inputs, targets = torch.randn(16, 32, device=device), torch.randn(16, 1, device=device)
    with torch.autocast("cuda", dtype=torch.float16):  # MP002
        predictions = model(inputs)
    loss = (predictions.float() - targets).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
