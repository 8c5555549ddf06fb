import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Categorical


class PolicyNet(nn.Module):
    def __init__(self, obs_dim, n_actions):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(obs_dim, 256), nn.Tanh(), nn.Linear(256, n_actions))

    def forward(self, obs):
        return self.body(obs)


policy = PolicyNet(8, 4).to(dtype=torch.bfloat16)
logits = policy(obs)
dist = Categorical(logits=logits.float())
logp = -F.cross_entropy(logits.view(-1, 4).float(), actions.view(-1), reduction="none")
