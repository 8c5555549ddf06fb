import torch
from torch.amp import GradScaler, autocast

scaler = GradScaler("cuda", enabled=args.fp16)
for images, targets in loader:
    optimizer.zero_grad()
    with autocast("cuda", enabled=args.fp16):  # positional `enabled`
        loss = criterion(model(images), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
