"""Time `mplint server` as an editor meets it: how long after a change to a 1,000-line training
script its diagnostics arrive, once the workspace is warm (the issue's target: <= 150 ms).

The script is generated (a bf16 policy from a helper module, per-stage loss and log-prob helpers,
training loops, metrics and logging code without any rule's words, argparse), written to a scratch
directory and opened in a fresh server, driven over its pipes by the tests' LSP client. Each
figure is the median over `--edits` changes, timed from sending `didChange` to receiving the
diagnostics published for that version: the server's debounce (`DEBOUNCE`), the re-analysis of
the edited unit and the protocol included. Edits alternate between a helper's body and `main`.
The last two figures time `Workspace.lint()` alone after such edits (no debounce, no protocol),
by the wall clock and by the CPU time the process used: on a loaded machine the first stretches,
the second much less.

    python bench/bench_server.py                 # a markdown table on stdout
    python bench/bench_server.py --edits 60 --json server.json
    python bench/bench_server.py --profile 25    # and where a warm Workspace.lint() spends its time
    python bench/bench_server.py --deprecated-amp  # the script imports `torch.cuda.amp` (see below)

With `--deprecated-amp` the script also imports `autocast` from `torch.cuda.amp`, as many AMP
scripts still do: MP203 then reads the whole file, so the server parses it whole on every edit
instead of only the statements the edit changed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mplint.server.lsp import DEBOUNCE  # noqa: E402 - after the path is set
from mplint.server.workspace import Workspace  # noqa: E402
from tests.server.lsp_client import Client  # noqa: E402

TARGET_SECONDS = 0.150

MODELS = '''\
import torch


def build_policy(vocab_size: int, dtype: torch.dtype = torch.bfloat16) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Embedding(vocab_size, 64), torch.nn.Linear(64, vocab_size)).to(dtype)
'''

HEAD = '''\
"""GRPO fine-tuning in stages (generated for mplint's server benchmark)."""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F

from models import build_policy

VOCAB_SIZE = 512
PROMPT_LEN = 16
'''

STAGE = '''

def token_logprobs_{i}(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probability of each token under the aligned logits."""
    return F.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def ppo_loss_{i}(policy, sequences, completions, old_logp, advantages, clip):
    logits = policy(sequences)[:, PROMPT_LEN - 1 : -1]
    logp = token_logprobs_{i}(logits, completions)
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1 - clip, 1 + clip)
    return -torch.min(ratio * advantages, clipped * advantages).mean()


def summarize_{i}(history: list[float], window: int = 10) -> dict[str, float]:
    recent = history[-window:] or [0.0]
    mean = sum(recent) / len(recent)
    spread = math.sqrt(sum((value - mean) ** 2 for value in recent) / len(recent))
    return {{"mean": mean, "spread": spread, "count": float(len(history))}}


def train_stage_{i}(policy, optimizer, args, log):
    history = []
    for step in range(args.steps):
        sequences = torch.randint(0, VOCAB_SIZE, (args.batch, PROMPT_LEN * 2))
        completions = sequences[:, PROMPT_LEN:]
        advantages = torch.randn(args.batch, 1)
        with torch.no_grad():
            old_logp = token_logprobs_{i}(policy(sequences)[:, PROMPT_LEN - 1 : -1], completions)
        loss = ppo_loss_{i}(policy, sequences, completions, old_logp, advantages, args.clip)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        history.append(loss.item())
        log.write(json.dumps({{"stage": {i}, "step": step, **summarize_{i}(history)}}) + "\\n")
'''


def training_script(lines: int, deprecated_amp: bool = False) -> str:
    """A script of about `lines` lines: as many stages as fit, then `main` calling them all."""
    stages = max(1, (lines - HEAD.count("\n") - 20) // STAGE.count("\n"))
    calls = "".join(f"        train_stage_{i}(policy, optimizer, args, log)\n" for i in range(stages))
    main = f'''

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--clip", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=1e-5)
    args = parser.parse_args()
    policy = build_policy(VOCAB_SIZE)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=args.lr)
    started = time.time()
    with open("train_log.jsonl", "w") as log:
{calls}    print(f"done in {{time.time() - started:.1f}} s")


if __name__ == "__main__":
    main()
'''
    amp = "import torch.nn.functional as F\nfrom torch.cuda.amp import autocast\n"
    head = HEAD.replace("import torch.nn.functional as F\n", amp) if deprecated_amp else HEAD
    return head + "".join(STAGE.format(i=i) for i in range(stages)) + main


def edited(script: str, number: int) -> str:
    """The script after edit `number`: a helper's body and `main`, in turn (each text new)."""
    if number % 2:
        return script.replace("window: int = 10", f"window: int = {10 + number}", 1)
    return script.replace("default=1e-5", f"default={number + 1}e-5", 1)


@dataclass(frozen=True)
class Figure:
    name: str
    runs: int
    median_s: float
    min_s: float
    max_s: float
    target_s: float | None


def figure(name: str, seconds: list[float], target: float | None = None) -> Figure:
    return Figure(name, len(seconds), statistics.median(seconds), min(seconds), max(seconds), target)


def over_the_server(directory: Path, script: str, edits: int) -> list[Figure]:
    client = Client(directory)
    try:
        client.initialize()
        start = time.perf_counter()
        uri = client.open("train.py", script)
        first = client.diagnostics(uri, version=1)
        cold = time.perf_counter() - start
        assert first, "the generated script has findings"
        latencies = []
        for number in range(1, edits + 1):
            start = time.perf_counter()
            client.change(uri, number + 1, edited(script, number))
            client.diagnostics(uri, version=number + 1)
            latencies.append(time.perf_counter() - start)
        client.shutdown()
    finally:
        client.kill()
    warm = latencies[2:]  # the first edits parse and position the whole script once
    return [
        figure("open, cold (no cache)", [cold]),
        figure(f"change -> diagnostics, warm (debounce {DEBOUNCE * 1000:.0f} ms included)", warm, TARGET_SECONDS),
    ]


def in_process(directory: Path, script: str, edits: int) -> list[Figure]:
    """`Workspace.lint()` after each edit: wall clock, and the CPU time it used (what a loaded
    machine stretches the wall clock from)."""
    workspace = Workspace(directory)
    wall, cpu = [], []
    for number in range(edits + 1):
        workspace.open("train.py", edited(script, -number - 2))  # texts the server run did not see
        start, start_cpu = time.perf_counter(), time.process_time()
        workspace.lint()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return [
        figure("Workspace.lint() after a change, warm: wall clock", wall[3:]),
        figure("Workspace.lint() after a change, warm: CPU time", cpu[3:]),
    ]


def profile(directory: Path, script: str, edits: int, top: int) -> str:
    """The `top` functions by cumulative time of `Workspace.lint()` over warm edits (cProfile's
    table: it slows Python code ~2x, so its shares, not its seconds, are the figures)."""
    workspace = Workspace(directory)
    profiler = cProfile.Profile()
    for number in range(edits + 1):
        workspace.open("train.py", edited(script, -number - 2))
        if number >= 3:  # warm, as the figures above
            profiler.enable()
        workspace.lint()
        profiler.disable()
    report = io.StringIO()
    pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(top)
    return report.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--profile", type=int, metavar="TOP", help="also print the TOP costs of a warm lint")
    parser.add_argument("--deprecated-amp", action="store_true", help="the script imports torch.cuda.amp")
    args = parser.parse_args()
    script = training_script(args.lines, args.deprecated_amp)
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        (directory / "models.py").write_text(MODELS)
        (directory / "train.py").write_text(script)
        figures = over_the_server(directory, script, args.edits)
        figures += in_process(directory, script, args.edits)
        profiled = profile(directory, script, args.edits, args.profile) if args.profile else None
    print(f"train.py: {script.count(chr(10))} lines\n")
    print("| figure | runs | median | min | max | target |\n|---|---:|---:|---:|---:|---:|")
    for found in figures:
        target = f"<= {found.target_s * 1000:.0f} ms" if found.target_s else ""
        print(
            f"| {found.name} | {found.runs} | {found.median_s * 1000:.0f} ms | {found.min_s * 1000:.0f} ms "
            f"| {found.max_s * 1000:.0f} ms | {target} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(found) for found in figures], indent=2) + "\n")
    if profiled:
        print(f"\n```\n{profiled.strip()}\n```")


if __name__ == "__main__":
    main()
