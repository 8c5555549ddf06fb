"""The torch behaviour the second-wave catalog rules claim, checked on the installed torch (CPU), so
no rule rests on folklore: MP004 (float16 BatchNorm's running statistics), MP206 (DataParallel's
replicas get autocast's enabled flag but not its dtype: the dtype is thread-local) and MP304's
`F.normalize` / `F.cosine_similarity` (their default eps is 0 in float16)."""

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
