import torch as th

proj = th.nn.Linear(64, 64).cuda()
with th.autocast("cuda", dtype=th.float16):
    attn_logits = proj(h) @ proj(h).transpose(-2, -1)
    attn_logits.masked_fill_(~causal, th.finfo(attn_logits.dtype).min)
    attn_logits.masked_fill_(~causal, th.finfo(attn_logits.dtype).min)
    probs = attn_logits.softmax(-1)
