"""Run CUDA's autocast policy on a CPU: the op lists, the AutocastCPU kernels, the cuda→cpu remap.

`torch.autocast("cuda")` disables itself without a GPU, and CPU autocast follows other op lists
(it upcasts `cross_entropy_loss`, CUDA does not). So a region the script opened for CUDA is
run as a CPU autocast region whose AutocastCPU kernels are replaced by Python kernels that apply
CUDA's policy. The lists come from the installed `ATen/autocast_mode.h` and must agree with the
ops that carry an AutocastCUDA kernel, or emulation is refused.

Python kernels replace the C++ CPU ones globally, so they are registered only while the
innermost active autocast region was opened for CUDA and unregistered when a region opened for
the CPU becomes innermost: a CPU region keeps exactly CPU's policy.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import re
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mplint.errors import MplintError

if TYPE_CHECKING:
    import torch

    from mplint.runtime.observations import RunLog


class EmulationError(MplintError):
    """CUDA's autocast policy cannot be reproduced faithfully with the installed torch."""


class Policy(str, enum.Enum):
    LOWER_PRECISION = "lower-precision"
    FP32 = "fp32"
    FP32_SET_OPT_DTYPE = "fp32-set-opt-dtype"
    FP32_APPEND_DTYPE = "fp32-append-dtype"
    PROMOTE = "promote"
    BANNED = "banned"
    # cuDNN's RNN wrapper casts input, hidden state and weights to float16, whatever the region's dtype.
    FP16 = "fp16"
    # Ops that only CPU autocast handles: inside an emulated CUDA region they run uncast.
    FALL_THROUGH = "fall-through"


_HEADER_LISTS = {
    "AT_FORALL_LOWER_PRECISION_FP": Policy.LOWER_PRECISION,
    "AT_FORALL_FP32": Policy.FP32,
    "AT_FORALL_FP32_SET_OPT_DTYPE": Policy.FP32_SET_OPT_DTYPE,
    "AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE": Policy.FP32_APPEND_DTYPE,
    "AT_FORALL_PROMOTE": Policy.PROMOTE,
}

# AutocastCUDA kernels registered outside autocast_mode.h's lists (autocast_mode.cpp bans
# binary_cross_entropy; the cuDNN convolutions register their own lower-precision kernels).
_REGISTERED_ELSEWHERE = {
    "aten::binary_cross_entropy": Policy.BANNED,
    "aten::cudnn_convolution": Policy.LOWER_PRECISION,
    "aten::cudnn_convolution_transpose": Policy.LOWER_PRECISION,
}

_BANNED_MESSAGE = (
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast "
    "(emulated CUDA autocast). Use binary_cross_entropy_with_logits / BCEWithLogitsLoss instead."
)


# An AutocastCUDA kernel only builds with cuDNN register (ATen/cudnn/AutocastRNN.cpp): every CUDA
# wheel has it, the CPU wheel does not. nn.LSTM/GRU/RNN reach `_cudnn_rnn` on a GPU through these
# ops, which carry no AutocastCUDA kernel: emulation casts at them, since `_cudnn_rnn` never runs on a CPU.
_CUDNN_RNN = "aten::_cudnn_rnn"
_CUDNN_RNN_CALLERS = {
    f"aten::{name}.{overload}": Policy.FP16
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu")
    for overload in ("input", "data")
}


_APPEND_DTYPE_EXCEPTIONS = {"aten::norm.Scalar": "ScalarOpt_dtype"}


def append_dtype_overload(qualified: str) -> str:
    """The overload an `fp32_append_dtype` op redispatches to, the one that takes an output dtype:
    `<overload>_dtype` (`norm.ScalarOpt_dim`; `norm.names_ScalarOpt_dim` in builds with named tensors)."""
    return _APPEND_DTYPE_EXCEPTIONS.get(qualified) or f"{qualified.partition('.')[2]}_dtype"


def header_path() -> Path:
    import torch

    return Path(torch.__file__).parent / "include" / "ATen" / "autocast_mode.h"


def parse_policy_lists(header_text: str) -> dict[str, Policy]:
    """Map `aten::name[.overload]` to its CUDA policy, from the X-macro lists of the header."""
    table: dict[str, Policy] = {}
    for macro, policy in _HEADER_LISTS.items():
        body = _macro_body(header_text, macro)
        if policy is Policy.FP32_APPEND_DTYPE:
            names = re.findall(r'"(\w+(?:\.\w+)?)"', body)
        else:
            names = [
                f"{name}.{overload}" if overload else name
                for name, overload in re.findall(r"_\((\w+)(?:,\s*(\w+))?\)", body)
            ]
        if not names:
            raise EmulationError(f"cannot emulate CUDA autocast: {macro} is empty or missing in {header_path()}")
        for name in names:
            table[f"aten::{name}"] = policy
    return table


def _macro_body(header_text: str, macro: str) -> str:
    match = re.search(rf"#define {macro}\(_\)((?:[^\n]*\\\n)*[^\n]*)", header_text)
    return match.group(1) if match else ""


@functools.cache
def cuda_policy_table() -> dict[str, Policy]:
    """CUDA's autocast policy per op, cross-checked against the registered AutocastCUDA kernels."""
    import torch

    path = header_path()
    if not path.is_file():
        raise EmulationError(f"cannot emulate CUDA autocast: {path} is missing from this torch install")
    table = {**parse_policy_lists(path.read_text()), **_REGISTERED_ELSEWHERE}
    registered = set(torch._C._dispatch_get_registrations_for_dispatch_key("AutocastCUDA"))
    if _CUDNN_RNN in registered:
        table[_CUDNN_RNN] = Policy.FP16
    unlisted = sorted(registered - set(table))
    unregistered = sorted(set(table) - registered)
    if unlisted or unregistered:
        raise EmulationError(
            "cannot emulate CUDA autocast: autocast_mode.h and the AutocastCUDA kernels of "
            f"torch {torch.__version__} disagree (kernels without a list entry: {unlisted or 'none'}; "
            f"list entries without a kernel: {unregistered or 'none'})"
        )
    return table


def emulation_table() -> dict[str, Policy]:
    """Every op that needs a kernel in an emulated region: CUDA's policies (cuDNN's RNN cast where
    the RNNs call it, as on a CUDA wheel), CPU-only ops fall through."""
    import torch

    cuda = {op: policy for op, policy in cuda_policy_table().items() if op != _CUDNN_RNN}
    cpu_only = set(torch._C._dispatch_get_registrations_for_dispatch_key("AutocastCPU")) - set(cuda)
    return {**dict.fromkeys(cpu_only, Policy.FALL_THROUGH), **cuda, **_CUDNN_RNN_CALLERS}


def _op_overload(qualified: str) -> torch._ops.OpOverload:
    import torch

    name, _, overload = qualified.removeprefix("aten::").partition(".")
    return getattr(getattr(torch.ops.aten, name), overload or "default")


def _is_eligible(value: object) -> bool:
    """CUDA's `is_eligible`: a floating-point tensor that is not float64."""
    import torch

    return isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype is not torch.float64


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(item, dtype) for item in value)
    return value.to(dtype) if _is_eligible(value) and value.dtype is not dtype else value


def _eligible_tensors(values: Iterator[Any]) -> Iterator[torch.Tensor]:
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _eligible_tensors(iter(value))
        elif _is_eligible(value):
            yield value


def _promoted_dtype(args: tuple[Any, ...], kwargs: dict[str, Any], lower: torch.dtype) -> torch.dtype:
    """CUDA's `promote_type`: float32 wins over the lower-precision type; other mixes are errors."""
    import torch

    dtypes = {tensor.dtype for tensor in _eligible_tensors(iter((*args, *kwargs.values())))}
    if torch.float32 in dtypes:
        return torch.float32
    if dtypes - {lower}:
        raise RuntimeError("Unexpected floating ScalarType in at::autocast::prioritize")
    return lower


_CASTING_POLICIES = (Policy.LOWER_PRECISION, Policy.FP32, Policy.FP16, Policy.PROMOTE)


def _cast_target(policy: Policy, args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.dtype:
    import torch

    lower = torch.get_autocast_dtype("cpu")  # the dtype the script asked CUDA autocast for
    if policy is Policy.LOWER_PRECISION:
        return lower
    if policy is Policy.FP32:
        return torch.float32
    if policy is Policy.FP16:
        return torch.float16
    return _promoted_dtype(args, kwargs, lower)


def _first_arg_eligible(args: tuple[Any, ...]) -> bool:
    return bool(args) and _is_eligible(args[0])


def _with_dtype_argument(
    op: torch._ops.OpOverload, args: tuple[Any, ...], kwargs: dict[str, Any], dtype: torch.dtype
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """`set_opt_dtype`: fill the op's optional `dtype` argument when the caller left it unset."""
    position = next(index for index, argument in enumerate(op._schema.arguments) if argument.name == "dtype")
    if position < len(args):
        if args[position] is None:
            args = (*args[:position], dtype, *args[position + 1 :])
        return args, kwargs
    if kwargs.get("dtype") is None:
        kwargs = {**kwargs, "dtype": dtype}
    return args, kwargs


@contextlib.contextmanager
def _autocast_cpu_excluded() -> Iterator[None]:
    import torch

    with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)):
        yield


def make_kernel(qualified: str, policy: Policy) -> Callable[..., Any]:
    """A Python AutocastCPU kernel for one op that does what its AutocastCUDA kernel does.

    A FALL_THROUGH kernel takes the dispatch key set first (register it `with_keyset=True`).
    """
    import torch

    op = _op_overload(qualified)
    append_dtype_op: Callable[..., Any] | None = None
    if policy is Policy.FP32_APPEND_DTYPE:
        packet = qualified.removeprefix("aten::").partition(".")[0]
        append_dtype_op = getattr(getattr(torch.ops.aten, packet), append_dtype_overload(qualified))

    def kernel(*args: Any, **kwargs: Any) -> Any:
        with _autocast_cpu_excluded():
            if policy is Policy.BANNED:
                raise RuntimeError(_BANNED_MESSAGE)
            if policy is Policy.FP32_SET_OPT_DTYPE and _first_arg_eligible(args):
                args, kwargs = _with_dtype_argument(op, args, kwargs, torch.float32)
            elif policy is Policy.FP32_APPEND_DTYPE:
                assert append_dtype_op is not None  # set above for this policy
                out_dtype = torch.float32 if _first_arg_eligible(args) else args[0].dtype
                return append_dtype_op(*args, **kwargs, dtype=out_dtype)
            elif policy in _CASTING_POLICIES:
                target = _cast_target(policy, args, kwargs)
                args, kwargs = _cast(args, target), {key: _cast(value, target) for key, value in kwargs.items()}
            return op(*args, **kwargs)

    def fall_through(keyset: torch._C.DispatchKeySet, *args: Any, **kwargs: Any) -> Any:
        # Skip CPU's kernel for this op only: the calls it makes inside stay autocast, as on CUDA.
        return op.redispatch(keyset.remove(torch._C.DispatchKey.AutocastCPU), *args, **kwargs)

    return fall_through if policy is Policy.FALL_THROUGH else kernel


class CudaPolicyKernels:
    """Registers (and unregisters) the emulating kernels on AutocastCPU as a unit."""

    def __init__(self) -> None:
        self._table = emulation_table()
        self._library: torch.library.Library | None = None

    @property
    def active(self) -> bool:
        return self._library is not None

    def register(self) -> None:
        import torch

        if self._library is not None:
            return
        library = torch.library.Library("aten", "IMPL")
        with warnings.catch_warnings():
            # Replacing the C++ AutocastCPU kernels is the point; torch warns about each override.
            warnings.simplefilter("ignore")
            for qualified, policy in self._table.items():
                kernel = make_kernel(qualified, policy)
                library.impl(
                    qualified.removeprefix("aten::"), kernel, "AutocastCPU", with_keyset=policy is Policy.FALL_THROUGH
                )
        self._library = library

    def unregister(self) -> None:
        if self._library is not None:
            self._library._destroy()
            self._library = None


def _is_cuda_device(value: object) -> bool:
    """A CUDA placement: "cuda", "cuda:1", a CUDA `torch.device`, or a bare device index (which
    means the accelerator, CUDA, as `module.to(rank)` and `device=local_rank` use it)."""
    import torch

    if isinstance(value, str):
        return value == "cuda" or value.startswith("cuda:")
    if isinstance(value, int):
        return not isinstance(value, bool) and value >= 0
    return isinstance(value, torch.device) and value.type == "cuda"


class CudaRemap:
    """Runs a torch call with CUDA placements moved to the CPU (`device=`, `.to`, `.cuda()`,
    `pin_memory=True`); notes in `log` that the script placed something on CUDA. A move to CUDA
    copies, as a transfer to a GPU does: the result aliases nothing and is dense."""

    def __init__(self, log: RunLog | None = None) -> None:
        import torch

        self._log = log
        self._torch = torch
        self._already_placed = {torch.Tensor.cuda, torch.Tensor.pin_memory}
        self._parse_to = torch._C._nn._parse_to
        self._moves = {torch.Tensor.to, self._parse_to}  # their first argument may be a device

    def _used_cuda(self) -> None:
        if self._log is not None:
            self._log.cuda_used = True

    def _placed(self, func: Any, device: Any) -> Any:
        """Where a CUDA placement goes: the CPU; but `Module.to` parses its arguments with
        `_parse_to` first, which keeps them CUDA (a bare index named so) for the move of each
        tensor that follows, a copy."""
        if func is self._parse_to:
            return f"cuda:{device}" if isinstance(device, int) else device
        return "cpu"

    def __call__(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        torch = self._torch
        if func in self._already_placed:
            if func is torch.Tensor.cuda:
                self._used_cuda()
            return args[0].clone(memory_format=torch.preserve_format)
        to_cuda = False
        if kwargs:
            device = kwargs.get("device")
            if device is not None and _is_cuda_device(device):
                kwargs = {**kwargs, "device": self._placed(func, device)}
                to_cuda = True
            if kwargs.get("pin_memory"):
                kwargs = {**kwargs, "pin_memory": False}
        if func in self._moves:
            # `.to(device, dtype, non_blocking)`: only the device can be a bare index (the others
            # are a dtype, a tensor or flags).
            first = 1 if func is torch.Tensor.to else 0
            if len(args) > first and _is_cuda_device(args[first]):
                args = (*args[:first], self._placed(func, args[first]), *args[first + 1 :])
                to_cuda = True
        result = func(*args, **kwargs)
        if to_cuda:
            self._used_cuda()
            if func is torch.Tensor.to and result is args[0]:
                return result.clone(memory_format=torch.preserve_format)
        return result


def cuda_to_cpu_mode(log: RunLog | None = None) -> torch.overrides.TorchFunctionMode:
    """A TorchFunctionMode that applies `CudaRemap` to every torch call (the recorder's own mode
    does the same while it records)."""
    from torch.overrides import TorchFunctionMode

    remap = CudaRemap(log)

    class CudaToCpu(TorchFunctionMode):
        def __torch_function__(
            self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
        ) -> Any:
            return remap(func, args, kwargs or {})

    return CudaToCpu()
