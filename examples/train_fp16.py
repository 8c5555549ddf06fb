"""Supervised next-token training under fp16 autocast, without loss scaling.

`mplint examples/train_fp16.py` reports:

- MP002 at `torch.autocast`: the forward runs in float16, whose smallest normal value is
  6e-5. Gradients of a well-trained model are often smaller than that, so without a GradScaler
  they flush to zero in the backward pass and those weights stop learning; no error is raised.
  bfloat16 has fp32's exponent range and needs no scaler; fp16 needs `torch.amp.GradScaler`.

The model itself stays fp32 (autocast keeps master weights in fp32), so MP003 does not apply,
and the mean-reduced cross-entropy inside CUDA autocast runs in fp32, so MP001 does not either.
Without CUDA the script still runs, with autocast disabled, so it can be tried on a laptop.
train_clean.py shows the fixed version.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from tiny_lm import TinyLM
from toy_task import VOCAB_SIZE, random_batch


def main() -> None:
    parser = argparse.ArgumentParser(description="fp16 autocast training without a GradScaler")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()
    torch.manual_seed(0)

    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    model = TinyLM(VOCAB_SIZE).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)

    model.train()
    for step in range(args.steps):
        inputs, targets = random_batch(args.batch_size, args.seq_len, device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=use_cuda):  # expect: MP002
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB_SIZE), targets.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        print(f"step {step}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
