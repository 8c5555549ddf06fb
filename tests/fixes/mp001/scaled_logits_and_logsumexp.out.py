import torch
from transformers import AutoModelForCausalLM

ref_model = AutoModelForCausalLM.from_pretrained(ref_path, torch_dtype=torch.float16)


@torch.no_grad()
def reference_logprobs(input_ids, labels):
    logits = ref_model(input_ids).logits
    scaled = torch.log_softmax((logits / 0.7).float(), dim=-1)
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - logits.float().logsumexp(dim=-1), scaled
