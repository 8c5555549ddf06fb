"""The report's data: gradients binned against float16's limits, scale per GradScaler step, the dtype timeline."""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import pytest
import torch

from mplint.runtime import details
from mplint.runtime.hooks import StepLimitReached
from mplint.runtime.observations import GRADIENT_EXPONENT_MAX, GRADIENT_EXPONENT_MIN
from mplint.runtime.outcome import Verdict
from mplint.runtime.report_data import build
from mplint.runtime.runner import Outcome, ScriptRun
from mplint.runtime.session import Session
from mplint.runtime.sites import UserCode

# Zero, flushed (< 2**-24), subnormal, float16's smallest normal (2**-14 is normal), normal, beyond its max, inf.
GRADIENT = [0.0, 2.0**-30, 2.0**-20, 2.0**-14, 0.75, 1e5, float("inf")]


def recorded(step: Callable[[], None], steps: int | None = None) -> ScriptRun:
    session = Session("cpu", UserCode([os.getcwd()]), steps=steps, details=True)
    try:
        with session:
            step()
    except StepLimitReached:
        pass
    return ScriptRun(Outcome.FINISHED, session.log.freeze(), (), device="cpu")


def report_of(run: ScriptRun) -> dict:
    return build(run, "train.py", (), (), (), Verdict(0, ""), steps_requested=None)


def test_each_gradient_value_lands_in_its_float16_region() -> None:
    weight = torch.nn.Parameter(torch.zeros(len(GRADIENT)))
    optimizer = torch.optim.SGD([weight], lr=0.0)

    def step() -> None:
        for _ in range(2):
            weight.grad = torch.tensor(GRADIENT)
            optimizer.step()

    [param] = report_of(recorded(step))["gradients"]["params"]
    assert (param["name"], param["dtype"], param["shape"], param["steps"]) == ("SGD param 0", "float32", [7], 2)
    assert (param["values"], param["zeros"], param["non_finite"]) == (14, 2, 2)
    assert (param["flushed"], param["subnormal"], param["overflow"]) == (2, 2, 2)
    assert param["flushed_share"] == param["subnormal_share"] == 2 / 14
    # 0.75 = 0.75 * 2**0: the bin of exponent 0 holds [2**-1, 2**0).
    assert param["counts"][0 - GRADIENT_EXPONENT_MIN] == 2
    assert sum(param["counts"]) == 14 - 2 - 2


def test_parameters_are_named_from_the_model_that_ran() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    optimizer = torch.optim.AdamW(model.parameters())

    def step() -> None:
        model(torch.ones(4, 3)).sum().backward()
        optimizer.step()

    data = report_of(recorded(step))
    assert [param["name"] for param in data["gradients"]["params"]] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    # This test's own lines are user code: the forward's ops are on the timeline, in float32, in step 1.
    assert data["timeline"]["steps"] == [1]
    assert {(row["op"], row["dtype"]) for row in data["timeline"]["rows"]} >= {("Tensor.sum", "float32")}


def test_each_enabled_gradscaler_step_keeps_its_scale_and_whether_it_skipped() -> None:
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=1)

    def step() -> None:
        for loss_scale in (1.0, float("inf"), 1.0):
            optimizer.zero_grad()
            scaler.scale((weight * loss_scale).sum()).backward()
            scaler.step(optimizer)
            scaler.update()

    assert report_of(recorded(step))["scaler"] == [
        {"call": 1, "scale": 1024.0, "skipped": False},
        {"call": 2, "scale": 2048.0, "skipped": True},  # grew after a good step, then found inf
        {"call": 3, "scale": 1024.0, "skipped": False},  # backed off by half
    ]


def test_without_details_nothing_extra_is_kept() -> None:
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    session = Session("cpu", UserCode([os.getcwd()]))
    with session:
        (weight * 2).sum().backward()
        optimizer.step()
    observations = session.log.freeze()
    assert (observations.timeline, observations.gradients, observations.scaler_steps) == ((), (), ())


def expected_counts(values: list[float]) -> list[int]:
    """The report's exponent bins of `values`, by Python's own frexp (zeros and inf/nan left out)."""
    counts = [0] * (GRADIENT_EXPONENT_MAX - GRADIENT_EXPONENT_MIN + 1)
    for value in values:
        if value != 0 and math.isfinite(value):
            exponent = min(max(math.frexp(value)[1], GRADIENT_EXPONENT_MIN), GRADIENT_EXPONENT_MAX)
            counts[exponent - GRADIENT_EXPONENT_MIN] += 1
    return counts


def test_parameters_binned_together_count_as_each_would_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 5 values: the 7-value gradient is split across two chunks, which it shares with its neighbours.
    monkeypatch.setattr(details, "CHUNK_VALUES", 5)
    gradients = {
        torch.float16: [0.0, 2.0**-20, -(2.0**-14), 0.75, 60000.0, float("-inf"), 3.0],
        torch.float32: [2.0**-30, -1.0, float("nan"), 1e-40, 2.0**-41, 2.0**20, -(2.0**19), 3e38],
        torch.bfloat16: [1e30, -(2.0**-100)],
        torch.float64: [1e-300, 2.0**-40, 2.0**20, -(2.0**19), 0.0, 1e300],
    }
    params = [torch.nn.Parameter(torch.zeros(len(values), dtype=dtype)) for dtype, values in gradients.items()]
    optimizer = torch.optim.SGD(params, lr=0.0)

    def step() -> None:
        for param, values in zip(params, gradients.values(), strict=True):
            param.grad = torch.tensor(values, dtype=param.dtype)
        optimizer.step()

    shown = report_of(recorded(step))["gradients"]["params"]
    assert [param["dtype"] for param in shown] == ["float16", "float32", "bfloat16", "float64"]
    for param, (dtype, values) in zip(shown, gradients.items(), strict=True):
        exact = torch.tensor(values, dtype=dtype).tolist()  # bf16 rounds 1e30
        assert param["counts"] == expected_counts(exact), dtype
        assert param["zeros"] == exact.count(0.0)
        assert param["non_finite"] == sum(1 for value in exact if not math.isfinite(value))


def test_gradients_are_measured_at_the_first_steps_every_tenth_and_the_last() -> None:
    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([weight], lr=0.0)

    def step() -> None:
        for number in range(1, 40):
            weight.grad = torch.full((3,), 2.0**-number)  # each step's values in a bin of their own
            optimizer.step()

    data = report_of(recorded(step, steps=25))
    measured = [*range(1, 11), 20, 25]
    assert data["gradients"]["measured_steps"] == measured
    assert data["gradients"]["measured_steps_text"] == "1–10, 20, 25"
    [param] = data["gradients"]["params"]
    assert (param["steps"], param["values"]) == (len(measured), 3 * len(measured))
    # 2**-n = 0.5 * 2**(1-n): bin 1-n.
    hit = [GRADIENT_EXPONENT_MIN + index for index, count in enumerate(param["counts"]) if count]
    assert hit == sorted(1 - number for number in measured)
    # Without a step limit, the sampling alone decides.
    assert report_of(recorded(step))["gradients"]["measured_steps"] == [*range(1, 11), 20, 30]


def test_parameters_without_a_gradient_at_some_steps_count_the_steps_they_had_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two layouts alternate, with the same lengths in other rows: kept apart, and found again after being forgotten.
    monkeypatch.setattr(details, "_MAX_LAYOUTS", 1)
    always, odd, even = (torch.nn.Parameter(torch.zeros(size)) for size in (2, 3, 3))
    optimizer = torch.optim.SGD([always, odd, even], lr=0.0)

    def step() -> None:
        for number in range(1, 6):
            always.grad = torch.full((2,), 0.75)
            odd.grad = torch.full((3,), 3.0) if number % 2 else None
            even.grad = torch.full((3,), -(2.0**-30)) if not number % 2 else None
            optimizer.step()

    shown = report_of(recorded(step))["gradients"]["params"]
    assert [(param["steps"], param["values"], param["counts"]) for param in shown] == [
        (5, 10, expected_counts([0.75] * 10)),
        (3, 9, expected_counts([3.0] * 9)),
        (2, 6, expected_counts([2.0**-30] * 6)),
    ]


def test_a_step_is_binned_in_chunks_of_bounded_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(details, "CHUNK_VALUES", 4)
    gradients = [(0, torch.arange(3.0)), (1, torch.arange(6.0).view(2, 3)), (2, torch.ones(0)), (3, torch.ones(2))]
    chunks = details._chunks(gradients)
    assert [[(row, piece.tolist()) for row, piece in chunk] for chunk in chunks] == [
        [(0, [0.0, 1.0, 2.0]), (1, [0.0])],
        [(1, [1.0, 2.0, 3.0, 4.0])],
        [(1, [5.0]), (3, [1.0, 1.0])],
    ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_measuring_gradients_on_cuda_never_waits_for_the_device() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 1)).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, foreach=False)
    batch = torch.ones(4, 8, device="cuda")

    def step() -> None:
        for number in range(3):
            optimizer.zero_grad()
            model(batch).sum().backward()
            if number:  # the first step puts the table and the chunk's row indices on the device
                torch.cuda.set_sync_debug_mode("error")
            try:
                optimizer.step()
            finally:
                torch.cuda.set_sync_debug_mode("default")

    first, *_ = report_of(recorded(step))["gradients"]["params"]
    assert (first["name"], first["steps"], first["values"]) == ("0.weight", 3, 3 * 64)
