import math

import torch
import torch.nn as nn


class SelfAttention(nn.Module):
    def __init__(self, d_model):
        super().__init__()
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.d_model = d_model

    def forward(self, x, mask):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model)
        scores = scores.masked_fill(mask == 0, -1e9)  # hide padding
        return scores.softmax(dim=-1) @ v


model = SelfAttention(512).cuda().half()
out = model(tokens, padding_mask)
