"""EAGLE's distillation loss: a LogSoftmax module, built inline and held by a model, over fp16 outputs."""

import torch
from torch import nn

head = nn.Linear(4096, 32000).half()


class Draft(nn.Module):
    def __init__(self):
        super().__init__()
        self.lm_head = nn.Linear(4096, 32000)
        self.logsoftmax = nn.LogSoftmax(dim=-1)

    def forward(self, hidden):
        return self.logsoftmax(self.lm_head(hidden))


draft = Draft().half()


def distillation_loss(predict, target):
    with torch.no_grad():
        target_p = nn.Softmax(dim=2)(head(target))
    out_logp = nn.LogSoftmax(dim=2)(head(predict))
    return -(target_p * out_logp).sum(2).mean()


def draft_logp(hidden, tokens):
    return draft(hidden).gather(-1, tokens[..., None])
