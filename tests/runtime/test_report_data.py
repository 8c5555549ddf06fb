"""The report's data: gradients binned against float16's limits, scale per GradScaler step, the dtype timeline."""

from __future__ import annotations

import os

import torch

from mplint.runtime.observations import GRADIENT_EXPONENT_MIN
from mplint.runtime.outcome import Verdict
from mplint.runtime.report_data import build
from mplint.runtime.runner import Outcome, ScriptRun
from mplint.runtime.session import Session
from mplint.runtime.sites import UserCode

# Zero, flushed (< 2**-24), subnormal, float16's smallest normal (2**-14 is normal), normal, beyond its max, inf.
GRADIENT = [0.0, 2.0**-30, 2.0**-20, 2.0**-14, 0.75, 1e5, float("inf")]


def recorded(step: object) -> ScriptRun:
    session = Session("cpu", UserCode([os.getcwd()]), details=True)
    with session:
        step()
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
