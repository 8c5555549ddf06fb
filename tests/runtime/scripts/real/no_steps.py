"""Evaluation-only by mistake: the flag that turns training on defaults to off, so no step runs."""

import argparse

import torch
import torch.nn.functional as F
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--train", action="store_true")
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).cuda()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler("cuda")
for _ in range(args.epochs):
    inputs = torch.randn(8, 16).cuda()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = F.cross_entropy(model(inputs), torch.randint(0, 4, (8,)).cuda())
    if args.train:
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
print("done")
