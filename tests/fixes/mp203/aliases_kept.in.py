from torch.cuda.amp import autocast as amp_autocast
from torch.cuda.amp import GradScaler as Scaler

loss_scaler = Scaler(2.0**14, 2.0, 0.5, 1000)


def forward_loss(model, batch):
    with amp_autocast(True, torch.bfloat16):
        return model(**batch).loss
