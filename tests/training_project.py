"""A small training project whose findings span files: the cache, parallel and `--add-noqa`
tests lint it. `train.py` takes its bf16 policy from `models.py`, so its unit reads both."""

from __future__ import annotations

TRAINING_PROJECT = {
    "pkg/__init__.py": "",
    "pkg/models.py": """\
import torch


def build_policy():
    return torch.nn.Linear(16, 4).to(torch.bfloat16)
""",
    "pkg/train.py": """\
import torch
import torch.nn.functional as F

from pkg.models import build_policy

policy = build_policy()
optimizer = torch.optim.AdamW(policy.parameters())


def step(batch):
    logp = F.log_softmax(policy(batch), dim=-1)
    loss = -logp.mean()
    loss.backward()
    optimizer.step()
""",
    "pkg/amp.py": """\
import torch

model = torch.nn.Linear(4, 4).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for batch in range(3):
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(torch.randn(2, 4)).sum()
    loss.backward()
    optimizer.step()
""",
    "pkg/broken.py": "def evaluate(:\n    pass\n",
    "pkg/data.py": "BATCH_SIZE = 32\n",
}

# (path, line, code) of what mplint reports on TRAINING_PROJECT.
EXPECTED = [
    ("pkg/amp.py", 6, "MP002"),
    ("pkg/broken.py", 1, "MP000"),
    ("pkg/train.py", 7, "MP003"),
    ("pkg/train.py", 11, "MP001"),
]
