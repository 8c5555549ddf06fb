"""On a CUDA machine: do the emulated verdicts match native CUDA? One short script, one report.

    python bench/cuda_check.py          (needs a GPU and torch with CUDA; ~1 minute)

1. Runs each single-process test script under `--device cuda` and `--device emulate-cuda`
   and compares the joined findings (code, path, line, verdict).
2. Sweeps ops under autocast("cuda") for bf16 and fp16: output dtype natively vs emulated.
3. Answers: does F.cross_entropy on bf16 logits under CUDA autocast run its inner
   log_softmax in bf16? (Read off the aten._log_softmax call that actually ran.)
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.chdir(ROOT)

from mplint.runtime.emulate import CudaPolicyKernels  # noqa: E402
from mplint.runtime.join import join, static_findings  # noqa: E402
from mplint.runtime.runner import run_script  # noqa: E402

SCRIPTS = ["bf16_policy.py", "regions.py", "fp16_no_scaler.py", "fp16_scaler.py", "half_adamw.py", "imports_helper.py"]


def verdicts(script: str, device: str) -> set[tuple[str, str, int, str]]:
    run = run_script(os.path.join("tests", "runtime", "scripts", script), device=device)
    if run.failure:
        return {("FAILED", run.failure.splitlines()[-1], 0, device)}
    return {(f.code, f.path, f.line, f.verdict or "") for f in join(static_findings(run.user_files), run.observations)}


class LogSoftmaxDtype(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        if func.overloadpacket is torch.ops.aten._log_softmax:
            self.dtypes.append(result.dtype)
        return result


def cross_entropy_inner_dtype(emulated: bool) -> str:
    device = "cpu" if emulated else "cuda"
    logits = torch.randn(8, 16, device=device) @ torch.randn(16, 16, device=device)
    kernels = CudaPolicyKernels() if emulated else None
    if kernels:
        kernels.register()
    try:
        with torch.autocast(device, dtype=torch.bfloat16):
            half_logits = logits @ torch.eye(16, device=device)  # bf16 under autocast
            with LogSoftmaxDtype() as seen:
                loss = F.cross_entropy(half_logits, torch.arange(8, device=device))
    finally:
        if kernels:
            kernels.unregister()
    return f"logits {half_logits.dtype}, inner _log_softmax {seen.dtypes}, loss {loss.dtype}"


def op_sweep() -> list[str]:
    x = lambda device: torch.randn(8, 8, device=device)  # noqa: E731
    ops = {
        "mm": lambda d: x(d) @ x(d), "linear": lambda d: F.linear(x(d), x(d)), "conv2d": lambda d: F.conv2d(x(d)[None, None], x(d)[None, None, :3, :3]),
        "log_softmax": lambda d: F.log_softmax(x(d), -1), "softmax": lambda d: F.softmax(x(d), -1), "exp": lambda d: x(d).exp(),
        "sum": lambda d: x(d).sum(), "cumsum": lambda d: x(d).cumsum(0), "layer_norm": lambda d: F.layer_norm(x(d), (8,)),
        "mse_loss": lambda d: F.mse_loss(x(d), x(d)), "addcmul": lambda d: torch.addcmul(x(d), x(d).half(), x(d)),
        "norm": lambda d: x(d).norm(), "cat": lambda d: torch.cat([x(d), x(d).bfloat16()]), "relu": lambda d: F.relu(x(d)),
        "cross_entropy": lambda d: F.cross_entropy(x(d), torch.arange(8, device=d)), "bmm": lambda d: torch.bmm(x(d)[None], x(d)[None]),
        "gelu": lambda d: F.gelu(x(d)), "logsumexp": lambda d: x(d).logsumexp(-1), "pow": lambda d: x(d).pow(2), "rsqrt": lambda d: x(d).abs().rsqrt(),
    }  # fmt: skip
    mismatches, total = [], 0
    for dtype in (torch.bfloat16, torch.float16):
        for name, op in ops.items():
            outcome = {}
            for emulated in (False, True):
                device = "cpu" if emulated else "cuda"
                kernels = CudaPolicyKernels() if emulated else None
                if kernels:
                    kernels.register()
                try:
                    with torch.autocast(device, dtype=dtype):
                        outcome[emulated] = str(op(device).dtype)
                except Exception as error:  # a mismatch in errors is a finding too
                    outcome[emulated] = f"error: {type(error).__name__}"
                finally:
                    if kernels:
                        kernels.unregister()
            total += 1
            if outcome[False] != outcome[True]:
                mismatches.append(f"{name}[{dtype}]: cuda {outcome[False]} vs emulated {outcome[True]}")
    return [f"op sweep: {total - len(mismatches)}/{total} output dtypes match", *mismatches]


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("cuda_check: no CUDA device here")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for script in SCRIPTS:
        native, emulated = verdicts(script, "cuda"), verdicts(script, "emulate-cuda")
        status = "same" if native == emulated else f"DIFFER: cuda-only {sorted(native - emulated)}, emulated-only {sorted(emulated - native)}"
        print(f"{script}: {status}; verdicts {sorted((c, l, v) for c, _, l, v in native)}")
    print(*op_sweep(), sep="\n")
    print(f"cross_entropy under CUDA autocast (bf16), native:   {cross_entropy_inner_dtype(emulated=False)}")
    print(f"cross_entropy under CUDA autocast (bf16), emulated: {cross_entropy_inner_dtype(emulated=True)}")


if __name__ == "__main__":
    main()
