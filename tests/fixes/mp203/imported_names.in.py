import torch
from torch.cuda.amp import GradScaler, autocast

scaler = GradScaler(enabled=args.fp16)
for images, targets in loader:
    optimizer.zero_grad()
    with autocast(args.fp16):  # positional `enabled`
        loss = criterion(model(images), targets)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
