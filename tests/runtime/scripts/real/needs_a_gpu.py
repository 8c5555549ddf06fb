"""Calls a CUDA API that emulation cannot serve, after setting up as usual: CUDA graphs by default,
`torch.cuda.ipc_collect()` with --ipc."""

import sys

import torch
from torch import nn

model = nn.Linear(8, 8).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
if "--ipc" in sys.argv:
    torch.cuda.ipc_collect()  # ipc
graph = torch.cuda.CUDAGraph()  # graph
