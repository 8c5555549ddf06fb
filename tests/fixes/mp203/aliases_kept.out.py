from torch.amp import autocast as amp_autocast
from torch.amp import GradScaler as Scaler

loss_scaler = Scaler("cuda", init_scale=2.0**14, growth_factor=2.0, backoff_factor=0.5, growth_interval=1000)


def forward_loss(model, batch):
    with amp_autocast("cuda", enabled=True, dtype=torch.bfloat16):
        return model(**batch).loss
