"""One log-softmax under CUDA autocast (upcast by CUDA's policy), one under CPU autocast (not)."""

import torch
import torch.nn.functional as F
from torch import nn

gpu_model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).to("cuda")
cpu_model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
optimizer = torch.optim.AdamW([*gpu_model.parameters(), *cpu_model.parameters()], lr=1e-3)  # AdamW

for _ in range(10):
    inputs = torch.randn(8, 16)
    targets = torch.randint(0, 4, (8,))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        logp_cuda = F.log_softmax(gpu_model(inputs.to("cuda")), dim=-1)  # MP001 on CUDA
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp_cpu = F.log_softmax(cpu_model(inputs), dim=-1)  # MP001 on CPU
    loss = F.nll_loss(logp_cuda.float(), targets.to("cuda")) + F.nll_loss(logp_cpu.float(), targets).to("cuda")
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
