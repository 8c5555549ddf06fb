"""Project helpers imported by imports_helper.py: the bug lives here, not in the script."""

import torch.nn.functional as F
from torch import Tensor


def action_log_probs(logits: Tensor) -> Tensor:
    return F.log_softmax(logits, dim=-1)  # MP001
