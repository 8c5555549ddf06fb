import torch as th

scaler = th.amp.GradScaler("cuda")
with th.amp.autocast(
    "cuda",
    enabled=use_amp,  # fp16 on V100
    dtype=th.float16,
):
    out = model(x)
with th.amp.autocast("cpu"):
    y = cpu_model(x)
