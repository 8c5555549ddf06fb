"""A project's own optimizer class (its __init__ calls super().__init__), built over parameters
whose dtype comes from a JSON config: float16, which the static pass cannot read."""

import json

import torch
from torch import nn

config = json.loads('{"dtype": "float16", "lr": 1e-3}')


class ScheduledAdamW(torch.optim.AdamW):
    def __init__(self, params, lr, warmup=100):
        self.warmup = warmup
        super().__init__(params, lr=lr, weight_decay=0.0)  # super

    def step(self, closure=None):
        return super().step(closure)


model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)).to(getattr(torch, config["dtype"]))
optimizer = ScheduledAdamW(model.parameters(), lr=config["lr"])  # optimizer
for _ in range(10):
    loss = model(torch.randn(8, 16, dtype=model[0].weight.dtype)).float().pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
