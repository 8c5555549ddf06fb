"""Per-step cost of `mplint verify` against the plain training step, on the CPU.

    python bench/verify_overhead.py [--rounds 5] [--steps 3] [--only bf16,fp16-scaler,fp16,small-ops]

Training (a ~20M-parameter MLP, batch 64, AdamW), in each precision:
  bf16          bf16 autocast;
  fp16-scaler   fp16 autocast, the loss scaled by a GradScaler;
  fp16          fp16 autocast, no scaler (verify measures fp16 gradient underflow);
each run three ways:
  plain      native CPU autocast, nothing installed (the baseline);
  emulation  the same region with CUDA's policy through the emulating AutocastCPU kernels, and
             the cuda->cpu remap mode active, nothing else;
  verify     the script written for CUDA under the full Session: emulation + recorder + graph
             tags + optimizer/backward hooks.
The variants take turns (rounds of a few steps each), so load from elsewhere slows them alike;
printed: each one's median step time, the median over rounds of its ratio to plain, and of the
recording cost, verify / emulation: what mplint adds beyond running CUDA's policy (targets: bf16 <= 1.1x, fp16 with a
scaler <= 1.3x, fp16 without <= 1.5x). CUDA's policy differs from CPU's (it runs layer_norm in
fp32, CPU's runs it in bf16), so emulation/plain is policy cost plus overhead.

small-ops: a 40,000-op loop on tiny tensors under no_grad (a token-sampling loop), plain python
against the full verify Session (target <= 5x).
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
SMALL_OPS = 40_000
DTYPES = {"bf16": torch.bfloat16, "fp16-scaler": torch.float16, "fp16": torch.float16}


def make_model() -> nn.Module:
    torch.manual_seed(0)
    blocks = [
        nn.Sequential(nn.Linear(WIDTH, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, WIDTH), nn.LayerNorm(WIDTH))
        for _ in range(2)
    ]
    return nn.Sequential(*blocks, nn.Linear(WIDTH, 1000))


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device_type: str,
    dtype: torch.dtype,
    scaler: torch.amp.GradScaler | None,
) -> None:
    inputs, targets = torch.randn(BATCH, WIDTH), torch.randint(0, 1000, (BATCH,))
    with torch.autocast(device_type, dtype=dtype):
        loss = nn.functional.cross_entropy(model(inputs), targets)
    optimizer.zero_grad()
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


@contextlib.contextmanager
def emulation_only() -> Iterator[None]:
    kernels = CudaPolicyKernels()
    kernels.register()
    try:
        with cuda_to_cpu_mode():
            yield
    finally:
        kernels.unregister()


def verify_session() -> Session:
    return Session("emulate-cuda", UserCode([os.path.dirname(os.path.abspath(__file__))]))


class Variant:
    """One way of running the training step, with its own model, optimizer and scaler."""

    def __init__(self, mode: str, device_type: str, around: Callable[[], contextlib.AbstractContextManager]) -> None:
        self.mode, self.device_type, self.around = mode, device_type, around
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.times: list[float] = []

    def run(self, steps: int) -> float:
        """Enter the variant's context, one warm-up step, then `steps` timed ones: their median."""
        times = []
        with self.around():
            if self.model is None:  # built inside, as a script builds them: "cuda" is the emulated CUDA
                self.model = make_model().to(self.device_type)
                self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
                if self.mode == "fp16-scaler":
                    self.scaler = torch.amp.GradScaler(self.device_type, init_scale=2.0**10)
            assert self.optimizer is not None
            for step in range(steps + 1):
                start = time.perf_counter()
                train_step(self.model, self.optimizer, self.device_type, DTYPES[self.mode], self.scaler)
                if step:
                    times.append(time.perf_counter() - start)
        self.times.extend(times)
        return statistics.median(times)


def interleaved(mode: str, rounds: int, steps: int) -> dict[str, tuple[float, float]]:
    """Median step time of each variant, and the median over rounds of its ratio to plain (and of
    verify to emulation): the variants take turns, so a busy machine slows them alike."""
    variants = {
        "plain": Variant(mode, "cpu", contextlib.nullcontext),
        "emulation": Variant(mode, "cpu", emulation_only),
        "verify": Variant(mode, "cuda", verify_session),
    }
    ratios: dict[str, list[float]] = {name: [] for name in (*variants, "recording")}
    for round_ in range(rounds):
        medians = {name: variant.run(steps) for name, variant in variants.items()}
        for name in variants:
            ratios[name].append(medians[name] / medians["plain"])
        ratios["recording"].append(medians["verify"] / medians["emulation"])
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{mode}: round {round_ + 1}/{rounds}")
    results = {
        name: (statistics.median(variant.times), statistics.median(ratios[name])) for name, variant in variants.items()
    }
    results["recording"] = (0.0, statistics.median(ratios["recording"]))
    return results


def small_ops_seconds(around: Callable[[], contextlib.AbstractContextManager], runs: int = 3) -> float:
    """A sampling loop: 40,000 ops on 8-element tensors, no autograd (the best of `runs`)."""
    best = float("inf")
    for _ in range(runs):
        with around(), torch.no_grad():
            logits = torch.zeros(8)
            start = time.perf_counter()
            for _ in range(SMALL_OPS // 4):
                probs = torch.softmax(logits, dim=-1)
                token = torch.argmax(probs)
                logits = logits * 0.5
                logits = logits + token
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="turns each variant takes (default 5)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per turn, after one warm-up (default 3)")
    parser.add_argument("--only", default="bf16,fp16-scaler,fp16,small-ops")
    options = parser.parse_args()
    modes = options.only.split(",")
    params = sum(p.numel() for p in make_model().parameters())
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {params / 1e6:.1f}M params, "
        f"batch {BATCH}, {options.rounds} rounds of {options.steps} steps, variants interleaved"
    )
    for mode in modes:
        if mode == "small-ops":
            plain = small_ops_seconds(contextlib.nullcontext)
            verified = small_ops_seconds(verify_session)
            print(
                f"small-ops: plain {plain * 1e3:.0f} ms, verify {verified * 1e3:.0f} ms for {SMALL_OPS:,} ops "
                f"({(verified - plain) / SMALL_OPS * 1e6:.1f} us added per op): {verified / plain:.2f}x plain"
            )
            continue
        results = interleaved(mode, options.rounds, options.steps)
        for name in ("plain", "emulation", "verify"):
            seconds, ratio = results[name]
            print(f"{mode:>11} {name:>10}: {seconds * 1e3:8.1f} ms/step  {ratio:5.2f}x plain")
        print(f"{mode:>11} recording: verify / emulation = {results['recording'][1]:.2f}x (median of rounds)")


if __name__ == "__main__":
    main()
