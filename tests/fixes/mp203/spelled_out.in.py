import torch as th

scaler = th.cuda.amp.GradScaler()
with th.cuda.amp.autocast(
    enabled=use_amp,  # fp16 on V100
    dtype=th.float16,
):
    out = model(x)
with th.cpu.amp.autocast():
    y = cpu_model(x)
