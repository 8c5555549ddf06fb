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


def test_a_cuda_wheel_s_cudnn_rnn_kernel_is_expected_and_never_registered_on_the_cpu(monkeypatch) -> None:
    """Every CUDA wheel registers an AutocastCUDA kernel for `_cudnn_rnn` outside the header's lists
    (torch 2.11+cu130 on an H200); emulation was refused there, also on GPU-less CI with that wheel."""
    registrations = torch._C._dispatch_get_registrations_for_dispatch_key
    monkeypatch.setattr(
        torch._C,
        "_dispatch_get_registrations_for_dispatch_key",
        lambda key: [*registrations(key), "aten::_cudnn_rnn"] if key == "AutocastCUDA" else registrations(key),
    )
    emulate.cuda_policy_table.cache_clear()
    try:
        assert emulate.cuda_policy_table()["aten::_cudnn_rnn"] is Policy.FP16
        table = emulate.emulation_table()
    finally:
        emulate.cuda_policy_table.cache_clear()
    assert "aten::_cudnn_rnn" not in table
    assert table["aten::lstm.input"] is table["aten::gru.data"] is Policy.FP16


@pytest.mark.parametrize(
    ("qualified", "overload"),
    [
        ("aten::norm.Scalar", "ScalarOpt_dtype"),
        ("aten::norm.ScalarOpt_dim", "ScalarOpt_dim_dtype"),
        ("aten::norm.names_ScalarOpt_dim", "names_ScalarOpt_dim_dtype"),  # torch 2.11+cu130's header
    ],
)
def test_fp32_append_dtype_ops_redispatch_to_their_dtype_overload(qualified: str, overload: str) -> None:
    assert emulate.append_dtype_overload(qualified) == overload


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


@pytest.mark.parametrize("rnn", [torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN])
def test_rnns_run_in_float16_even_in_a_bf16_region_as_cudnn_does(cuda_region, rnn) -> None:
    """cuDNN's autocast wrapper casts to float16 whatever the region's dtype (seen on an H200)."""
    layer = rnn(8, 8)
    outputs, _ = layer(torch.randn(3, 2, 8))
    packed, _ = layer(torch.nn.utils.rnn.pack_padded_sequence(torch.randn(3, 2, 8), [3, 2]))
    outputs.float().sum().backward()

    assert outputs.dtype == packed.data.dtype == torch.float16
    assert layer.weight_ih_l0.grad.dtype == torch.float32
    assert torch.nn.LSTMCell(8, 8)(torch.randn(2, 8))[0].dtype == torch.bfloat16  # the header's list: the region's


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
