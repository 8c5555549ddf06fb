"""Waits forever for data that never comes, inside a CUDA autocast region."""

import time

import torch
from torch import nn

model = nn.Linear(8, 8).cuda()
with torch.autocast("cuda", dtype=torch.bfloat16):
    model(torch.randn(4, 8).cuda())
    while True:
        time.sleep(0.05)
