"""binary_cross_entropy under CUDA autocast: CUDA refuses it (its error, raised inside the region)."""

import torch
import torch.nn.functional as F
from torch import nn

model = nn.Linear(8, 1).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with torch.autocast("cuda", dtype=torch.float16):
    probabilities = torch.sigmoid(model(torch.randn(4, 8).cuda()))
    loss = F.binary_cross_entropy(probabilities, torch.rand(4, 1).cuda())  # bce
loss.backward()
optimizer.step()
