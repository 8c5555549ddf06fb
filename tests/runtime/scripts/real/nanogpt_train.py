"""nanoGPT's train.py, made tiny: DDP when launched by torchrun (set_device, nccl, DDP(device_ids)),
a dtype table, `ctx = nullcontext() if cpu else autocast`, a GradScaler enabled for float16 only,
`torch.compile` on by default, gradient accumulation, and `with ctx:` around the forward."""

import argparse
import os
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

parser = argparse.ArgumentParser()
parser.add_argument("--device", default="cuda")
parser.add_argument("--dtype", default="bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16")
parser.add_argument("--compile", type=int, default=1)
parser.add_argument("--backend", default="nccl")
parser.add_argument("--max-iters", type=int, default=20)
args = parser.parse_args()

ddp = int(os.environ.get("RANK", -1)) != -1
if ddp:
    init_process_group(backend=args.backend)
    ddp_rank = int(os.environ["RANK"])
    ddp_local_rank = int(os.environ["LOCAL_RANK"])
    device = f"cuda:{ddp_local_rank}"
    torch.cuda.set_device(device)
    master_process = ddp_rank == 0
else:
    master_process = True
    device = args.device
torch.manual_seed(1337)
torch.backends.cuda.matmul.allow_tf32 = True
device_type = "cuda" if "cuda" in device else "cpu"
ptdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[args.dtype]
ctx = nullcontext() if device_type == "cpu" else torch.amp.autocast(device_type=device_type, dtype=ptdtype)


class TinyGPT(nn.Module):
    def __init__(self, vocab=64, width=32):
        super().__init__()
        self.wte = nn.Embedding(vocab, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx, targets=None):
        x = self.wte(idx)
        x = x + self.mlp(x)
        logits = self.lm_head(self.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1)) if targets is not None else None
        return logits, loss

    def configure_optimizers(self, lr, device_type):
        fused = device_type == "cuda"
        return torch.optim.AdamW(self.parameters(), lr=lr, betas=(0.9, 0.95), fused=fused)  # optimizer


def get_batch():
    data = torch.randint(0, 64, (8, 17))
    x, y = data[:, :-1].contiguous(), data[:, 1:].contiguous()
    if device_type == "cuda":
        x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x, y


model = TinyGPT().to(device)
scaler = torch.cuda.amp.GradScaler(enabled=(args.dtype == "float16"))  # scaler
optimizer = model.configure_optimizers(1e-3, device_type)
if args.compile:
    model = torch.compile(model)
if ddp:
    model = DDP(model, device_ids=[ddp_local_rank])

X, Y = get_batch()
t0 = time.time()
for iter_num in range(args.max_iters):
    for micro_step in range(2):
        if ddp:
            model.require_backward_grad_sync = micro_step == 1
        with ctx:  # region
            logits, loss = model(X, Y)
            loss = loss / 2
        X, Y = get_batch()
        scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if device_type == "cuda":
        torch.cuda.synchronize()
    if master_process:
        print(f"iter {iter_num}: loss {loss.item() * 2:.4f}, time {(time.time() - t0) * 1000:.2f}ms")
if ddp:
    destroy_process_group()
