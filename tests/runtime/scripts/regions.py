"""One log-softmax under CUDA autocast (upcast by CUDA's policy), one under CPU autocast (not)."""

import torch
import torch.nn.functional as F
from torch import nn

model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to("cuda")
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # AdamW

for _ in range(10):
    inputs = torch.randn(8, 16, device="cuda")
    targets = torch.randint(0, 4, (8,), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logp_cuda = F.log_softmax(model(inputs), dim=-1)  # MP001 on CUDA
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp_cpu = F.log_softmax(model(inputs.cpu()), dim=-1)  # MP001 on CPU
    loss = F.nll_loss(logp_cuda.float(), targets) + F.nll_loss(logp_cpu.float(), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
