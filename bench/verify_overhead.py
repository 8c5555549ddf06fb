"""Per-step cost of `mplint verify` against the plain training step, on the CPU.

    python bench/verify_overhead.py [--steps 15]

A ~20M-parameter MLP (batch 64, bf16 autocast, AdamW) is trained in three ways:
  plain      native CPU autocast, nothing installed (the baseline);
  emulation  the same region with CUDA's policy through the emulating AutocastCPU kernels, and
             the cuda->cpu remap mode active, nothing else;
  verify     the script written for CUDA under the full Session: emulation + recorder + graph
             tags + optimizer/backward hooks.
Prints the median step time of each, its ratio to plain (target: emulation <= 1.1x) and the
recording cost, verify / emulation (target <= 1.3x). CUDA's policy differs from CPU's (it runs
layer_norm in fp32, CPU's runs it in bf16), so emulation/plain is policy cost plus overhead.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mplint.runtime.emulate import CudaPolicyKernels, cuda_to_cpu_mode  # noqa: E402
from mplint.runtime.session import Session  # noqa: E402
from mplint.runtime.sites import UserCode  # noqa: E402

WIDTH, HIDDEN, BATCH = 1024, 4096, 64


def make_model() -> nn.Module:
    torch.manual_seed(0)
    blocks = [nn.Sequential(nn.Linear(WIDTH, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, WIDTH), nn.LayerNorm(WIDTH)) for _ in range(2)]
    return nn.Sequential(*blocks, nn.Linear(WIDTH, 1000))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, device_type: str) -> None:
    inputs, targets = torch.randn(BATCH, WIDTH), torch.randint(0, 1000, (BATCH,))
    with torch.autocast(device_type, dtype=torch.bfloat16):
        loss = nn.functional.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@contextlib.contextmanager
def emulation_only() -> Iterator[None]:
    kernels = CudaPolicyKernels()
    kernels.register()
    try:
        with cuda_to_cpu_mode():
            yield
    finally:
        kernels.unregister()


def median_step_seconds(steps: int, device_type: str, around: Callable[[], contextlib.AbstractContextManager]) -> float:
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    with around():
        for step in range(steps + 2):  # two warm-up steps
            start = time.perf_counter()
            train_step(model, optimizer, device_type)
            if step >= 2:
                times.append(time.perf_counter() - start)
            if sys.stderr.isatty():
                sys.stderr.write(f"\r{step + 1}/{steps + 2} steps")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    steps = parser.parse_args().steps
    params = sum(p.numel() for p in make_model().parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {params / 1e6:.1f}M params, batch {BATCH}, median of {steps} steps")
    plain = median_step_seconds(steps, "cpu", contextlib.nullcontext)
    emulated = median_step_seconds(steps, "cpu", emulation_only)
    verified = median_step_seconds(steps, "cuda", lambda: Session("emulate-cuda", UserCode([os.path.dirname(os.path.abspath(__file__))])))
    for name, seconds in (("plain", plain), ("emulation", emulated), ("verify", verified)):
        print(f"{name:>10}: {seconds * 1e3:8.1f} ms/step  {seconds / plain:5.2f}x plain")
    print(f"recording: verify / emulation = {verified / emulated:.2f}x")


if __name__ == "__main__":
    main()
