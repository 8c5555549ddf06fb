import torch
import torch.nn.functional as F

log_p = F.log_softmax(
        logits,  # [batch, classes]
        dim=-1,
    )
guarded = torch.log(F.softmax(logits, dim=-1) + 1e-8)
