"""CUDA's autocast policy on the CPU: the table against AutocastCUDA, op by op, and its kernels."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from mplint.runtime import emulate
from mplint.runtime.emulate import EmulationError, Policy

CUDA_KERNELS = sorted(torch._C._dispatch_get_registrations_for_dispatch_key("AutocastCUDA"))
TABLE = emulate.cuda_policy_table()


@pytest.mark.parametrize("op", CUDA_KERNELS)
def test_every_autocast_cuda_kernel_has_a_policy(op: str) -> None:
    assert op in TABLE


@pytest.mark.parametrize("op", sorted(TABLE))
def test_every_policy_entry_has_an_autocast_cuda_kernel(op: str) -> None:
    assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "AutocastCUDA")


def test_header_lists_parse_into_policies() -> None:
    header = (
        "#define AT_FORALL_LOWER_PRECISION_FP(_) \\\n  _(mm)                \\\n  _(conv_transpose2d, input)\n"
        "#define AT_FORALL_FP32(_) \\\n  _(pow, Tensor_Scalar)\n"
        "#define AT_FORALL_FP32_SET_OPT_DTYPE(_) \\\n  _(softmax, int)\n"
        '#define AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE(_) \\\n  _(ADD_NS(norm), \\\n    "norm.Scalar", \\\n    fp32_append_dtype)\n'
        "#define AT_FORALL_PROMOTE(_) \\\n  _(cross)\n"
    )

    assert emulate.parse_policy_lists(header) == {
        "aten::mm": Policy.LOWER_PRECISION,
        "aten::conv_transpose2d.input": Policy.LOWER_PRECISION,
        "aten::pow.Tensor_Scalar": Policy.FP32,
        "aten::softmax.int": Policy.FP32_SET_OPT_DTYPE,
        "aten::norm.Scalar": Policy.FP32_APPEND_DTYPE,
        "aten::cross": Policy.PROMOTE,
    }


def test_emulation_is_refused_when_the_header_and_the_kernels_disagree(tmp_path, monkeypatch) -> None:
    header = emulate.header_path().read_text().replace("  _(log_softmax, int)", "")
    (tmp_path / "autocast_mode.h").write_text(header)
    monkeypatch.setattr(emulate, "header_path", lambda: tmp_path / "autocast_mode.h")
    emulate.cuda_policy_table.cache_clear()
    try:
        with pytest.raises(EmulationError, match=r"kernels without a list entry: \['aten::log_softmax.int'\]"):
            emulate.cuda_policy_table()
    finally:
        emulate.cuda_policy_table.cache_clear()


@pytest.fixture
def cuda_region():
    """A CPU autocast region whose AutocastCPU kernels apply CUDA's policy."""
    kernels = emulate.CudaPolicyKernels()
    kernels.register()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    finally:
        kernels.unregister()


def test_each_policy_casts_as_cuda_does(cuda_region) -> None:
    weights, inputs = torch.randn(8, 8), torch.randn(4, 8)
    activations = inputs @ weights

    assert activations.dtype == torch.bfloat16  # lower precision
    assert torch.exp(activations).dtype == torch.float32  # fp32
    assert F.softmax(activations, dim=-1).dtype == torch.float32  # fp32, optional dtype set
    assert F.softmax(activations, dim=-1, dtype=torch.bfloat16).dtype == torch.bfloat16  # explicit dtype kept
    assert torch.addcmul(activations, inputs, activations).dtype == torch.float32  # promote to the widest
    assert activations.norm().dtype == torch.float32  # fp32, dtype appended
    with pytest.raises(RuntimeError, match="unsafe to autocast"):
        F.binary_cross_entropy(torch.sigmoid(activations), torch.rand(4, 8))


class OutputDtypes(TorchDispatchMode):
    """Which dtype each aten op produced (below autocast: what actually ran)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, torch.dtype] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        self.seen[str(func.overloadpacket)] = (result[0] if isinstance(result, tuple) else result).dtype
        return result


def test_cross_entropy_on_half_logits_keeps_its_log_softmax_in_half_on_cuda(cuda_region) -> None:
    """cross_entropy has no CUDA autocast kernel and passes the logits' dtype to log_softmax."""
    logits = torch.randn(4, 8, requires_grad=True) @ torch.randn(8, 8)

    with OutputDtypes() as ops:
        loss = F.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))

    assert ops.seen["aten._log_softmax"] == torch.bfloat16
    assert ops.seen["aten.nll_loss_forward"] == torch.float32  # nll_loss is on CUDA's fp32 list
    assert loss.dtype == torch.float32


def test_a_cpu_region_keeps_cpu_policy_once_the_kernels_are_gone() -> None:
    kernels = emulate.CudaPolicyKernels()
    kernels.register()
    kernels.unregister()

    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = torch.randn(4, 8) @ torch.randn(8, 8)
        assert F.cross_entropy(logits, torch.tensor([0, 1, 2, 3])).dtype == torch.float32
        assert F.log_softmax(logits, dim=-1).dtype == torch.bfloat16


def test_cuda_placements_run_on_the_cpu() -> None:
    with emulate.cuda_to_cpu_mode():
        placed = [
            torch.zeros(2, device="cuda"),
            torch.ones(2, device=torch.device("cuda", 0)),
            torch.ones(2).cuda(),
            torch.ones(2).to("cuda:0", torch.float16),
            torch.nn.Linear(2, 2).cuda().weight,
        ]

    assert {tensor.device.type for tensor in placed} == {"cpu"}
    assert placed[3].dtype == torch.float16
