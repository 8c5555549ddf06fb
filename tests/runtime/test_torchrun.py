"""`torchrun --nproc-per-node 2 -m mplint verify`: each rank records, rank 0 prints one report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.runtime.support import marked_line, script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_cpu_ranks_give_one_merged_report() -> None:
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "-m", "mplint", "verify", "--device", "cpu", "--format", "json", script("ddp_bf16.py"),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}

    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)

    reports = [line for line in done.stdout.splitlines() if line == "{"]
    assert len(reports) == 1, done.stdout + done.stderr  # one report, from rank 0 only
    document = json.loads(done.stdout[done.stdout.index("{") :])
    assert (document["ranks"], document["steps"], document["device"]) == (2, 2, "cpu")
    findings = document["findings"]
    [log_softmax] = [finding for finding in findings if finding["code"] == "MP001"]
    assert log_softmax["line"] == marked_line("ddp_bf16.py", "MP001")
    assert log_softmax["verdict"] == "confirmed"
    # 2 steps on each of 2 ranks, merged.
    assert log_softmax["evidence"] == [f"aten._log_softmax ran on bfloat16 at tests/runtime/scripts/ddp_bf16.py:{log_softmax['line']}, 4 calls"]
