import torch


def token_loss(logp: torch.Tensor) -> torch.Tensor:
    return -logp.float().mean()
