"""The torch behaviour MP108, MP207 and MP306 claim, checked on the installed torch (CPU), so no rule
rests on folklore: GradScaler skips the optimizer step on inf gradients while the scheduler still
moves (MP108); autocast refuses bf16 where the GPU cannot make it, and `is_bf16_supported` reads
the compute capability (MP207); losses and sums return their half input's dtype, overflowing or
rounding where fp32 does not, and which autocast regions upcast them (MP306)."""

from __future__ import annotations

import inspect
import os
import re
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn


# MP108 ---------------------------------------------------------------------------------------
def _amp_step(loss_factor: float, guarded: bool) -> tuple[bool, float, list[str]]:
    """One fp16-style AMP step on CPU: whether the weights moved, the learning rate after, and the
    warnings raised; `guarded` steps the scheduler only when the scale did not drop."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (step + 1) / 10)  # warmup
    scaler = torch.amp.GradScaler("cpu")
    before = model.weight.detach().clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler.scale(model(torch.randn(2, 4)).sum() * loss_factor).backward()
        scale_before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        if not guarded or scale_before <= scaler.get_scale():
            scheduler.step()
    moved = not torch.equal(before, model.weight)
    return moved, optimizer.param_groups[0]["lr"], [str(warning.message) for warning in caught]


def test_the_scaler_skips_the_step_on_inf_gradients_and_the_scheduler_still_moves() -> None:
    moved, lr, caught = _amp_step(float("inf"), guarded=False)
    assert not moved
    assert lr == pytest.approx(0.02)  # the warmup advanced as if the step had happened
    assert any("Detected call of `lr_scheduler.step()` before `optimizer.step()`" in text for text in caught)


def test_checking_the_scale_keeps_the_schedule_with_the_weights() -> None:
    moved, lr, caught = _amp_step(float("inf"), guarded=True)
    assert not moved and lr == pytest.approx(0.01)
    assert not any("lr_scheduler.step()" in text for text in caught)
    moved, lr, _ = _amp_step(1.0, guarded=True)
    assert moved and lr == pytest.approx(0.02)  # a real step still advances it


def test_grad_scaler_calls_the_optimizer_only_without_inf() -> None:
    source = inspect.getsource(torch.amp.GradScaler._maybe_opt_step)
    assert 'if not sum(v.item() for v in optimizer_state["found_inf_per_device"].values()):' in source


# MP207 ---------------------------------------------------------------------------------------
def test_cuda_autocast_refuses_bf16_where_the_gpu_cannot_make_it() -> None:
    source = inspect.getsource(torch.amp.autocast.__init__)
    assert "self.fast_dtype == torch.bfloat16" in source and "not torch.cuda.is_bf16_supported()" in source
    assert "Current CUDA Device does not support bfloat16. Please switch dtype to float16." in source


def test_is_bf16_supported_reads_the_compute_capability_and_emulates_below_it() -> None:
    source = inspect.getsource(torch.cuda.is_bf16_supported)
    assert "get_device_properties(device).major >= 8" in source
    assert inspect.signature(torch.cuda.is_bf16_supported).parameters["including_emulation"].default is True


def test_the_documented_fallback_picks_float16_without_a_bf16_gpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("the CPU build has no CUDA device: is_bf16_supported() is False there")
    amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert amp_dtype == torch.float16


# MP306 ---------------------------------------------------------------------------------------
def test_a_float16_sum_and_mse_loss_overflow_where_fp32_does_not() -> None:
    ones = torch.ones(100_000)
    assert torch.isinf(ones.half().sum()) and ones.sum().item() == 100_000
    assert torch.isinf(ones.half().cumsum(0)[-1])
    pred, target = torch.full((1000,), 300.0), torch.zeros(1000)
    assert torch.isinf(F.mse_loss(pred.half(), target.half()))
    assert F.mse_loss(pred, target).item() == 90_000


def test_a_bfloat16_sum_keeps_eight_bits() -> None:
    ones = torch.ones(100_000, dtype=torch.bfloat16)
    assert ones.sum().dtype == torch.bfloat16 and ones.sum().item() == 99_840
    assert ones.sum(dtype=torch.float32).item() == 100_000  # the fix: an fp32 accumulator and result


def test_a_bfloat16_kl_of_a_distribution_with_itself_is_not_zero() -> None:
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(4, 32_000), dim=-1)
    fp32 = F.kl_div(probs.log(), probs, reduction="batchmean").item()
    bf16 = F.kl_div(probs.log().bfloat16(), probs.bfloat16(), reduction="batchmean").item()
    assert abs(fp32) < 1e-8 and bf16 > 1e-5


LOSSES = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy_with_logits")


@pytest.mark.parametrize("loss", LOSSES)
def test_cpu_autocast_runs_the_losses_in_fp32_but_not_the_sums(loss: str) -> None:
    a, b = torch.randn(8, dtype=torch.bfloat16), torch.rand(8, dtype=torch.bfloat16)
    assert getattr(F, loss)(a, b, reduction="sum").dtype == torch.bfloat16  # outside a region: the input's dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert getattr(F, loss)(a, b, reduction="sum").dtype == torch.float32
        assert a.sum().dtype == torch.bfloat16 and a.cumsum(0).dtype == torch.bfloat16


def test_cuda_autocast_lists_the_losses_and_sums_as_fp32_ops() -> None:
    header = os.path.join(os.path.dirname(torch.__file__), "include", "ATen", "autocast_mode.h")
    with open(header, encoding="utf-8") as file:
        text = file.read()
    listed = set(re.findall(r"_\((\w+)[,)]", text))
    assert {*LOSSES, "sum", "cumsum"} <= listed
    assert "mean" not in listed  # no region upcasts a mean (MP306 leaves it alone)
