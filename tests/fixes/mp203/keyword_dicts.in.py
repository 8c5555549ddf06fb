import torch

amp_kwargs = {"enabled": args.amp, "dtype": torch.float16}
scaler = torch.cuda.amp.GradScaler(**scaler_config)
with torch.cuda.amp.autocast(**amp_kwargs):
    loss = model(x)


class FusedGelu(torch.autograd.Function):
    @staticmethod
    @torch.cuda.amp.custom_fwd(**FWD_OPTIONS)
    def forward(ctx, x):
        return gelu_kernel(x)
