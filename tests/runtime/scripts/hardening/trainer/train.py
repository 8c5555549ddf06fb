"""Part of a package: `python -m trainer.train` works, `python trainer/train.py` does not."""

import torch
from torch import nn

from .losses import token_loss

model = nn.Linear(8, 8)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss = token_loss(torch.log_softmax(model(torch.randn(4, 8)), dim=-1))
loss.backward()
optimizer.step()
