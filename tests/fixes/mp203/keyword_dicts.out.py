import torch

amp_kwargs = {"enabled": args.amp, "dtype": torch.float16}
scaler = torch.amp.GradScaler("cuda", **scaler_config)
with torch.amp.autocast("cuda", **amp_kwargs):
    loss = model(x)


class FusedGelu(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", **FWD_OPTIONS)
    def forward(ctx, x):
        return gelu_kernel(x)
