"""pytorch/examples distributed/ddp-tutorial-series/multigpu.py's shape: mp.spawn workers,
`init_process_group` imported by name before anything runs (the worker re-imports this file),
`backend="nccl"`, `set_device(rank)`, the model and batches moved with a bare device index
(`model.to(gpu_id)`, `source.to(self.gpu_id)`), `DDP(model, device_ids=[gpu_id])`. The forward
runs under fp16 autocast with no GradScaler (MP002).

`--in-features N` feeds the model the wrong width (the script's own bug, raised inside torch);
`--ipc` calls what emulation cannot serve (`torch.cuda.ipc_collect`)."""

import argparse
import os

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.distributed import destroy_process_group, init_process_group
from torch.nn.parallel import DistributedDataParallel as DDP

parser = argparse.ArgumentParser()
parser.add_argument("--port", default="29517")
parser.add_argument("--in-features", type=int, default=20)
parser.add_argument("--ipc", action="store_true")


class Trainer:
    def __init__(self, model, optimizer, gpu_id):
        self.gpu_id = gpu_id
        self.model = model.to(gpu_id)
        self.model = DDP(self.model, device_ids=[gpu_id])
        self.optimizer = optimizer

    def _run_batch(self, source, targets):
        self.optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):  # MP002
            output = self.model(source)  # forward
        loss = F.mse_loss(output.float(), targets)
        loss.backward()
        self.optimizer.step()

    def train(self, args, steps=20):
        for _ in range(steps):
            source = torch.randn(32, args.in_features).to(self.gpu_id)
            targets = torch.randn(32, 1).cuda(self.gpu_id)
            self._run_batch(source, targets)


def main(rank, args):
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", args.port
    init_process_group(backend="nccl", rank=rank, world_size=args.world_size)
    torch.cuda.set_device(rank)
    assert torch.device(rank) == torch.device("cuda", rank)
    assert torch.zeros(1, device=rank).sum().item() == 0
    if args.ipc:
        torch.cuda.ipc_collect()  # ipc
    model = torch.nn.Linear(20, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    Trainer(model, optimizer, rank).train(args)
    destroy_process_group()


if __name__ == "__main__":
    args = parser.parse_args()
    args.world_size = torch.cuda.device_count()
    mp.spawn(main, args=(args,), nprocs=args.world_size)
