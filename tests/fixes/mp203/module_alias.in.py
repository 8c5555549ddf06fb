import torch
from torch.cuda import amp

scaler = amp.GradScaler(enabled=cuda)
for i, (imgs, targets, paths, _) in pbar:
    with amp.autocast(enabled=cuda):
        pred = model(imgs)
        loss, loss_items = compute_loss(pred, targets.to(device))
    scaler.scale(loss).backward()
