"""Hogwild-style training (pytorch/examples mnist_hogwild): forked multiprocessing workers share one
model and each runs its own optimizer over it. The parent builds the model and only waits."""

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn


def train(rank, model):
    torch.manual_seed(rank)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(20):
        logits = model(torch.randn(8, 16).to(torch.bfloat16))
        logp = F.log_softmax(logits, dim=-1)  # MP001
        loss = -logp[:, 0].float().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


if __name__ == "__main__":
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 4)).to(torch.bfloat16)
    model.share_memory()
    workers = [mp.get_context("fork").Process(target=train, args=(rank, model)) for rank in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
