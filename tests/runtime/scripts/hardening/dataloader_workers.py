"""Feeds a bf16 policy from a DataLoader with two worker processes."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

dataset = TensorDataset(torch.randn(64, 8), torch.randint(0, 8, (64,)))
loader = DataLoader(dataset, batch_size=8, num_workers=2)
policy = nn.Linear(8, 8).to(torch.bfloat16)
optimizer = torch.optim.SGD(policy.parameters(), lr=0.1)
for features, labels in loader:
    logp = F.log_softmax(policy(features.to(torch.bfloat16)), dim=-1)  # MP001
    loss = F.nll_loss(logp.float(), labels)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
