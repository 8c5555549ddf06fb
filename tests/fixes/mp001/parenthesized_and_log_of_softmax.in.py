import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

policy = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-0.5B", torch_dtype=torch.bfloat16)


def sample_logprobs(input_ids, actions):
    logits = policy(input_ids).logits[:, -1, :]
    logp = F.log_softmax((logits / 0.7), dim=-1)  # temperature-scaled, written in parentheses
    greedy = (logits / 0.7).log_softmax(-1)
    probs = F.softmax(logits, dim=-1)
    entropy_term = torch.log(probs)  # the softmax is elsewhere: reported, not fixed here
    token_logp = torch.log(torch.softmax(logits, -1)).gather(-1, actions)
    chosen = torch.gather(logits.log_softmax(-1), -1, actions)
    return logp, greedy, entropy_term, token_logp, chosen
