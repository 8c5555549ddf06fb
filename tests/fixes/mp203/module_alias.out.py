import torch
from torch import amp

scaler = amp.GradScaler("cuda", enabled=cuda)
for i, (imgs, targets, paths, _) in pbar:
    with amp.autocast("cuda", enabled=cuda):
        pred = model(imgs)
        loss, loss_items = compute_loss(pred, targets.to(device))
    scaler.scale(loss).backward()
