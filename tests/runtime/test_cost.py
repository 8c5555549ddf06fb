"""What the recorder does per op and per pass, which is what it costs (bench/verify_overhead.py
has the figures): no dispatch mode on plain ops, no underflow measurement of a scaled or bf16
backward, a sample of the fp16 ops when it measures, and one host read per backward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mplint.runtime import audit, recorder
from mplint.runtime.runner import run_script
from tests.runtime.support import script


def unscaled_passes(name: str, steps: int = 8) -> list:
    run = run_script(script(name), device="emulate-cuda", steps=steps)
    return [backward for backward in run.observations.backward_passes if not backward.scaled]


def test_plain_ops_run_without_a_dispatch_mode_and_log_softmax_with_one() -> None:
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["plain"] = torch._C._len_torch_dispatch_stack()
            return x

    with audit(device="emulate-cuda", static=False) as report:
        logits = Probe()(torch.randn(2, 8, dtype=torch.bfloat16))
        F.log_softmax(logits, dim=-1)

    assert seen["plain"] == 0
    assert [finding.code for finding in report.problems] == ["MP901"]


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_a_scaled_fp16_backward_is_not_measured() -> None:
    run = run_script(script("fp16_scaler.py"), device="emulate-cuda", steps=3)

    passes = run.observations.backward_passes
    assert len(passes) == 3 and all(backward.scaled for backward in passes)
    assert [(backward.fp16_ops, backward.fp16_values) for backward in passes] == [(0, 0)] * 3


def test_a_bf16_backward_is_not_measured() -> None:
    passes = unscaled_passes("bf16_policy.py", steps=3)

    assert len(passes) == 3 and all(backward.fp16_ops == 0 for backward in passes)


def test_the_sampled_underflow_is_within_a_few_points_of_the_full_measurement(monkeypatch) -> None:
    sampled = unscaled_passes("fp16_no_scaler.py")
    monkeypatch.setattr(recorder, "SAMPLE_EVERY", 1)
    full = unscaled_passes("fp16_no_scaler.py")

    def share(passes: list) -> float:
        return sum(backward.underflowed for backward in passes) / sum(backward.fp16_values for backward in passes)

    # Every fp16 backward op is counted; about one in SAMPLE_EVERY is re-run in fp32.
    assert sum(backward.fp16_ops for backward in sampled) == sum(backward.fp16_ops for backward in full)
    assert sum(backward.fp16_values for backward in sampled) < sum(backward.fp16_values for backward in full) / 4
    assert share(full) > 0.5
    assert abs(share(sampled) - share(full)) < 0.05


def test_underflow_counts_are_read_from_the_device_once_per_pass_not_per_op(monkeypatch) -> None:
    reads = []
    original_item = torch.Tensor.item

    def item(self):
        reads.append(self)
        return original_item(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    passes = unscaled_passes("fp16_no_scaler.py")

    ops = sum(backward.fp16_ops for backward in passes)
    assert 0 < len(reads) <= len(passes) < ops
