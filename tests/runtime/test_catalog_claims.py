"""The torch behaviour the second-wave catalog rules claim, checked on the installed torch (CPU), so
no rule rests on folklore: MP004 (float16 BatchNorm's running statistics), MP005 (log-probs of one
policy in bf16 and in fp32 give a ratio that is not 1), MP006 (float16 overflows at 65504, where
bfloat16 holds T5-scale activations), MP206 (DataParallel's replicas get autocast's enabled flag but
not its dtype: the dtype is thread-local) and MP304's `F.normalize` / `F.cosine_similarity` (their
default eps is 0 in float16)."""

from __future__ import annotations

import inspect
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import parallel_apply


# MP004 ---------------------------------------------------------------------------------------
def _trained_running_var(bn: nn.BatchNorm1d, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = (torch.randn(64, 4) * 400).to(dtype)  # batch variance ~1.6e5 > 65504
    for _ in range(20):
        bn(x)
    bn.eval()
    return bn.running_var, bn(x[:8])


def test_half_batch_norm_running_var_overflows_and_eval_collapses() -> None:
    running_var, out = _trained_running_var(nn.BatchNorm1d(4).half(), torch.float16)
    assert running_var.dtype == torch.float16
    assert torch.isinf(running_var).all()
    assert (out == 0).all()


def test_fp32_batch_norm_takes_half_input_and_stays_finite() -> None:
    running_var, out = _trained_running_var(nn.BatchNorm1d(4), torch.float16)
    assert running_var.dtype == torch.float32
    assert torch.isfinite(running_var).all()
    assert out.dtype == torch.float16
    assert torch.isfinite(out).all() and (out != 0).any()


def test_bf16_batch_norm_holds_the_same_statistics() -> None:
    running_var, _ = _trained_running_var(nn.BatchNorm1d(4).to(torch.bfloat16), torch.bfloat16)
    assert torch.isfinite(running_var).all()


# MP206 ---------------------------------------------------------------------------------------
def test_parallel_apply_passes_the_enabled_flag_but_not_the_dtype() -> None:
    source = inspect.getsource(parallel_apply)
    assert "torch.amp.autocast(device_type, enabled=autocast_enabled)" in source
    assert "torch.is_autocast_enabled()" in source
    assert "threading.Thread" in source


def test_autocast_dtype_is_thread_local() -> None:
    seen: dict[str, object] = {}
    with torch.autocast("cpu", dtype=torch.float16):
        enabled = torch.is_autocast_enabled("cpu")
        main_dtype = torch.mm(torch.randn(2, 2), torch.randn(2, 2)).dtype

        def replica() -> None:  # what parallel_apply's _worker does in each replica's thread
            with torch.amp.autocast("cpu", enabled=enabled):
                seen["dtype"] = torch.get_autocast_dtype("cpu")
                seen["out"] = torch.mm(torch.randn(2, 2), torch.randn(2, 2)).dtype

        thread = threading.Thread(target=replica)
        thread.start()
        thread.join()
    assert main_dtype == torch.float16
    assert seen == {"dtype": torch.bfloat16, "out": torch.bfloat16}  # the thread's default, not the region's


def test_cuda_autocast_dtype_set_in_one_thread_is_float16_in_another() -> None:
    before = torch.get_autocast_dtype("cuda")
    seen: list[torch.dtype] = []
    try:
        torch.set_autocast_dtype("cuda", torch.bfloat16)  # what entering autocast("cuda", dtype=bf16) sets
        thread = threading.Thread(target=lambda: seen.append(torch.get_autocast_dtype("cuda")))
        thread.start()
        thread.join()
        assert torch.get_autocast_dtype("cuda") == torch.bfloat16
    finally:
        torch.set_autocast_dtype("cuda", before)
    assert seen == [torch.float16]


# MP304: F.normalize / cosine_similarity ------------------------------------------------------------
def test_default_eps_of_normalize_and_cosine_similarity_is_zero_in_float16() -> None:
    assert inspect.signature(F.normalize).parameters["eps"].default == 1e-12
    assert torch.tensor(1e-12, dtype=torch.float16).item() == 0.0
    assert torch.tensor(1e-8, dtype=torch.float16).item() == 0.0
    assert 1e-12 < torch.finfo(torch.float16).tiny and 1e-8 < torch.finfo(torch.float16).tiny
    assert torch.tensor(1e-12, dtype=torch.bfloat16).item() > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_normalize_of_a_zero_row(dtype: torch.dtype) -> None:
    out = F.normalize(torch.zeros(2, 8, dtype=dtype), dim=-1)
    assert torch.isnan(out).all() if dtype == torch.float16 else (out == 0).all()


def test_normalize_gradient_of_a_zero_row_is_nan_in_float16() -> None:
    x = torch.zeros(2, 8, dtype=torch.float16, requires_grad=True)
    F.normalize(x, dim=-1).sum().backward()
    assert x.grad is not None and torch.isnan(x.grad).all()


def test_cosine_similarity_with_a_zero_vector() -> None:
    zero, ones = torch.zeros(2, 8), torch.ones(2, 8)
    assert (F.cosine_similarity(zero, ones) == 0).all()
    assert torch.isnan(F.cosine_similarity(zero.half(), ones.half())).all()


def test_an_eps_float16_holds_keeps_normalize_finite() -> None:
    zero = torch.zeros(2, 8, dtype=torch.float16)
    assert (F.normalize(zero, dim=-1, eps=1e-6) == 0).all()
    assert (F.normalize(zero.float(), dim=-1).half() == 0).all()


# MP005 ---------------------------------------------------------------------------------------------
def _sampled_logps(dtype: torch.dtype) -> torch.Tensor:
    """Log-probs of 64 sampled tokens under one fixed policy head (32000-way), computed in `dtype`."""
    torch.manual_seed(0)
    hidden = torch.randn(64, 256)
    head = nn.Linear(256, 32000, bias=False)
    with torch.no_grad():
        logits = head.to(dtype)(hidden.to(dtype)) * 3
        tokens = torch.distributions.Categorical(logits=logits.float()).sample()
        return F.log_softmax(logits, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)


def test_identical_policies_give_a_ratio_of_one_in_one_precision() -> None:
    ratio = torch.exp(_sampled_logps(torch.float32) - _sampled_logps(torch.float32))
    assert (ratio == 1).all()
    bf16 = _sampled_logps(torch.bfloat16)
    assert (torch.exp(bf16.float() - bf16) == 1).all()  # a cast after the log_softmax changes nothing


def test_bf16_against_fp32_log_probs_of_one_policy_give_ratios_off_by_percents() -> None:
    deviation = (torch.exp(_sampled_logps(torch.float32) - _sampled_logps(torch.bfloat16).float()) - 1).abs()
    # Measured on torch 2.13, CPU: mean 1.9%, max 5.2% (log-probs between -12.5 and -5).
    assert 0.005 < deviation.mean().item() < 0.05
    assert 0.02 < deviation.max().item() < 0.1


def test_cpu_autocast_keeps_log_softmax_in_bf16() -> None:
    logits = torch.randn(4, 100, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.log_softmax(logits, dim=-1).dtype == torch.bfloat16


# MP006 ---------------------------------------------------------------------------------------------
def test_float16_overflows_at_65504_where_bfloat16_holds() -> None:
    assert torch.finfo(torch.float16).max == 65504
    reported = torch.tensor([66246.39])  # a T5 feed-forward output (huggingface/transformers#5651)
    assert torch.isinf(reported.half()).all()
    assert torch.isfinite(reported.bfloat16()).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_t5_scale_feed_forward_then_rms_norm(dtype: torch.dtype) -> None:
    """T5's `wo` projection, then T5LayerNorm (an RMS norm) and the next projection: an activation
    past 65504 is inf in float16, the norm makes it NaN and zeroes the rest of its row (x / inf), and
    the next layer spreads the NaN to every output; bfloat16 keeps the row finite."""
    wo = nn.Linear(4, 8, bias=False)
    with torch.no_grad():
        wo.weight.fill_(0.5)
        wo.weight[0].fill_(16561.6)  # one channel sums to 66246.4 for an input of ones
    hidden = wo.to(dtype)(torch.ones(1, 4, dtype=dtype))
    variance = hidden.pow(2).mean(-1, keepdim=True)
    normed = hidden * torch.rsqrt(variance + 1e-6)
    following = nn.Linear(8, 8).to(dtype)(normed)
    if dtype == torch.float16:
        assert torch.isinf(hidden[0, 0]) and torch.isnan(normed[0, 0]) and (normed[0, 1:] == 0).all()
        assert torch.isnan(following).all()
    else:
        assert torch.isfinite(following).all()
