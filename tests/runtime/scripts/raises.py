"""Fails after one step, deep inside an autocast region it entered by hand."""

import torch
from torch import nn

model = nn.Linear(8, 8).cuda()
optimizer = torch.optim.Adam(model.parameters())
region = torch.autocast("cuda", dtype=torch.float16)
region.__enter__()  # never exited: the script dies first
loss = model(torch.randn(4, 8).cuda()).float().sum()
loss.backward()
optimizer.step()
raise ValueError("bad batch: labels out of range")
