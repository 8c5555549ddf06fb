"""nanoGPT's pattern: the autocast context is built once, `ctx = torch.amp.autocast(...)`, and
entered each step with `with ctx:`; its dtype comes from a JSON config (float16, no scaler)."""

import json

import torch
from torch import nn

config = json.loads('{"dtype": "float16"}')
model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 1)).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
ctx = torch.amp.autocast(device_type="cuda", dtype=getattr(torch, config["dtype"]))  # ctx

for _ in range(10):
    inputs, targets = torch.randn(16, 32).cuda(), torch.randn(16, 1).cuda()
    with ctx:  # with
        predictions = model(inputs)
    loss = 1e-4 * (predictions.float() - targets).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
