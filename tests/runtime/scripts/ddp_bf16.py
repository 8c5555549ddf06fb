"""DDP on CPU (gloo): every rank trains a bf16 policy whose log-probs are taken uncast."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

dist.init_process_group("gloo")
torch.manual_seed(dist.get_rank())
policy = DistributedDataParallel(nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).to(torch.bfloat16))
optimizer = torch.optim.SGD(policy.parameters(), lr=1e-2)

try:
    for _ in range(10):
        logp = F.log_softmax(policy(torch.randn(8, 16, dtype=torch.bfloat16)), dim=-1)  # MP001
        loss = -logp[:, 0].float().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
finally:
    dist.destroy_process_group()
