"""pytorch/examples imagenet's shape: `--multiprocessing-distributed` trains in mp.spawn workers.

Each worker joins a gloo process group, wraps the model in DDP and trains under fp16 autocast
with no GradScaler (MP002). The parent process only spawns and waits.
"""

import argparse
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

parser = argparse.ArgumentParser()
parser.add_argument("--world-size", type=int, default=2)
parser.add_argument("--port", default="29513")
parser.add_argument("--epochs", type=int, default=20)


def main_worker(rank, args):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank, world_size=args.world_size)
    torch.manual_seed(rank)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = DistributedDataParallel(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)).to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    try:
        for _ in range(args.epochs):
            inputs, targets = torch.randn(8, 16, device=device), torch.randn(8, 1, device=device)
            with torch.autocast(device_type="cuda", dtype=torch.float16):  # MP002
                outputs = model(inputs)
            loss = 1e-4 * (outputs.float() - targets).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        dist.destroy_process_group()


def main():
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(main_worker, nprocs=args.world_size, args=(args,))


if __name__ == "__main__":
    main()
