import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)


def sequence_logprobs(input_ids, labels):
    logits = policy(input_ids).logits
    logp = F.log_softmax(logits.float(), dim=-1)  # per-token log-probs
    return torch.gather(logp, -1, labels.unsqueeze(-1)).squeeze(-1)


def entropy(input_ids):
    logits = policy(input_ids).logits
    logp = logits.float().log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)
