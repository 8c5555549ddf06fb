"""On a CUDA machine: do the emulated verdicts match native CUDA? One short script, one report.

    python bench/cuda_check.py          (needs a GPU and torch with CUDA; ~1 minute)

1. Runs each single-process test script under `--device cuda` and `--device emulate-cuda`
   and compares the joined findings (code, path, line, verdict).
2. Sweeps ops under autocast("cuda") for bf16 and fp16: output dtype natively vs emulated.
3. Answers: does F.cross_entropy on bf16 logits under CUDA autocast run its inner
   log_softmax in bf16? (Read off the aten._log_softmax call that actually ran.)
4. Runs `mplint verify --format json` as a user would, under `--device cuda` and
   `--device emulate-cuda`, on every example and runtime test script that takes no argument,
   and compares exit status, verdicts and evidence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

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
        "lstm": lambda d: torch.nn.LSTM(8, 8).to(d)(x(d)[None])[0], "gru": lambda d: torch.nn.GRU(8, 8).to(d)(x(d)[None])[0],
        "lstm_cell": lambda d: torch.nn.LSTMCell(8, 8).to(d)(x(d))[0],
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


# Scripts that need arguments, a terminal or several processes, or that are modules, not scripts.
NOT_STANDALONE = set("tiny_lm.py toy_task.py hangs.py reads_stdin.py ddp_bf16.py spawn_ddp.py ddp_tutorial.py".split())
CLI_SCRIPTS = sorted(
    os.path.join(folder, name)
    for folder in ("examples", "tests/runtime/scripts", "tests/runtime/scripts/real")
    for name in os.listdir(folder)
    if name.endswith(".py") and name not in NOT_STANDALONE
)


def verify_cli(script: str, device: str) -> tuple[int, set[tuple[str, int, str]], set[str]]:
    """`mplint verify` on SCRIPT as a user runs it: exit status, (code, line, verdict)s, evidence lines."""
    options = ["--format", "json", "--device", device, "--timeout", "90"]
    command = [sys.executable, "-m", "mplint", "verify", *options, script]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=150)
    try:
        findings = json.loads(done.stdout)["findings"]
    except (ValueError, KeyError):
        last_error_line = (done.stderr.strip().splitlines() or [""])[-1]
        return done.returncode, {("NO JSON", 0, last_error_line)}, set()
    verdicts = {(f["code"], f["line"], f.get("verdict") or "") for f in findings}
    return done.returncode, verdicts, {line for f in findings for line in f.get("evidence") or []}


def cli_sweep() -> list[str]:
    jobs = [(script, device) for script in CLI_SCRIPTS for device in ("cuda", "emulate-cuda")]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip(jobs, pool.map(lambda job: verify_cli(*job), jobs)))
    lines, same_verdicts, same_evidence = [], 0, 0
    for script in CLI_SCRIPTS:
        native, emulated = results[script, "cuda"], results[script, "emulate-cuda"]
        if native[:2] != emulated[:2]:
            lines.append(f"{script}: exit {native[0]} vs {emulated[0]}; cuda-only {sorted(native[1] - emulated[1])}, "
                         f"emulated-only {sorted(emulated[1] - native[1])}")  # fmt: skip
            continue
        same_verdicts += 1
        if native[2] == emulated[2]:
            same_evidence += 1
            continue
        # Measured figures (underflow rates) differ with the data: each device draws its own random numbers.
        lines += [f"{script}: evidence on cuda: {line}" for line in sorted(native[2] - emulated[2])]
        lines += [f"{script}: evidence emulated: {line}" for line in sorted(emulated[2] - native[2])]
    return [
        f"mplint verify --device cuda vs emulate-cuda: {same_verdicts}/{len(CLI_SCRIPTS)} scripts with the same exit "
        f"status and verdicts, {same_evidence} with the same evidence too",
        *lines,
    ]


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("cuda_check: no CUDA device here")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for script in SCRIPTS:
        native, emulated = verdicts(script, "cuda"), verdicts(script, "emulate-cuda")
        status = (
            "same"
            if native == emulated
            else f"DIFFER: cuda-only {sorted(native - emulated)}, emulated-only {sorted(emulated - native)}"
        )
        print(f"{script}: {status}; verdicts {sorted((c, l, v) for c, _, l, v in native)}")
    print(*op_sweep(), sep="\n")
    print(f"cross_entropy under CUDA autocast (bf16), native:   {cross_entropy_inner_dtype(emulated=False)}")
    print(f"cross_entropy under CUDA autocast (bf16), emulated: {cross_entropy_inner_dtype(emulated=True)}")
    print(*cli_sweep(), sep="\n", flush=True)


if __name__ == "__main__":
    main()
