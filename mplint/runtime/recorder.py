"""The recorder: log-space ops' dtypes by the user's `file:line`, graph tags, and fp16 underflow.

One TorchFunctionMode (above autograd) sees every torch call. It remaps CUDA placements when CUDA
is emulated, and writes the user's line and the active autocast region into the `metadata` of each
new autograd node, because backward runs where no user frame is on the stack (on CUDA, on another
thread). Nothing else happens per call: small ops (a sampling loop) cost one Python frame.

A TorchDispatchMode (below autograd and autocast, so it sees what actually ran) is pushed only
where its view is needed:
- around the calls that can compute log-probabilities (`F.log_softmax`, `logsumexp`,
  `F.cross_entropy`, ...): their aten ops' real dtypes, by the user's line;
- during a backward pass whose root was not scaled by an enabled GradScaler and whose graph holds
  fp16 results (a forward call that returned fp16 marks its node): every fp16 backward
  op is counted, and a sample of them (one in `SAMPLE_EVERY`, a different one each pass) is
  re-run in fp32 to measure underflow. The counts stay on the op's device and are read once per
  backward pass (no host sync per op).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from mplint.runtime.hooks import FP16_KEY, REGION_KEY, SITE_KEY, dtype_name
from mplint.runtime.observations import OpCall, RunLog, Site
from mplint.runtime.sites import UserCode

if TYPE_CHECKING:
    import torch
    from torch.overrides import TorchFunctionMode

    from mplint.runtime.emulate import CudaRemap

FP16_SMALLEST_NORMAL = 6.103515625e-05  # 2**-14: below it fp16 values are subnormal
# One fp16 backward op in this many is re-run in fp32 (the op chosen shifts by one each pass, so
# consecutive passes cover different ops). The estimate is a ratio over the sampled ops.
SAMPLE_EVERY = 8

# `F.cross_entropy(..., reduction="mean"|"sum")` dispatches `_log_softmax` then `nll_loss_forward`
# with reduction != 0: recorded under its own name so the join can tell it from per-token log-probs.
REDUCED_LOSS_OP = "aten.nll_loss_forward"
REDUCED_LOSS = "aten.nll_loss_forward(reduced)"
# The aten ops whose dtypes the join reads (MP001/MP901).
RECORDED_OPS = ("aten._log_softmax", "aten.logsumexp", REDUCED_LOSS_OP)
# The dtype timeline (kept for a report) covers the first this many optimizer steps: its size is
# bounded by the script's lines times this.
TIMELINE_STEPS = 100


def _tensors(value: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [item for element in value for item in _tensors(element)]
    return []


def _upcast_fp16(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype is torch.float16 else value
    if isinstance(value, (list, tuple)):
        return type(value)(_upcast_fp16(item) for item in value)
    return value


def _watched_functions() -> set[Any]:
    """The torch functions inside which a log-softmax or logsumexp can run."""
    import torch
    import torch.nn.functional as F

    candidates = [
        F.log_softmax,
        F.cross_entropy,
        F.nll_loss,
        F.kl_div,
        F.gumbel_softmax,
        torch.log_softmax,
        torch.logsumexp,
        torch.Tensor.log_softmax,
        torch.Tensor.logsumexp,
        torch.special.log_softmax,
        torch.special.logsumexp,
        torch._C._nn.cross_entropy_loss,
    ]
    return set(candidates)


class Recorder:
    """The recording modes of one Session, and the state they share."""

    def __init__(self, log: RunLog, user_code: UserCode, remap: CudaRemap | None = None) -> None:
        import torch

        self.log = log
        self.user_code = user_code
        self.remap = remap
        self._torch = torch
        self._dispatch = _op_recorder(self)
        self.frame: FrameType | None = None  # the caller of the watched call being run
        self.measuring = False  # in an unscaled backward pass
        self.op_index = 0  # fp16 backward ops seen in this pass
        self.sample_offset = 0
        self.fp16_ops = 0
        self.fp16_values = 0
        self._lost: dict[Any, torch.Tensor] = {}  # device -> underflowed values counted there

    def function_mode(self) -> TorchFunctionMode:
        from torch.overrides import TorchFunctionMode

        recorder = self
        log, user_code, remap, dispatch = self.log, self.user_code, self.remap, self._dispatch
        watched = _watched_functions()
        grad_enabled = self._torch.is_grad_enabled
        float16 = self._torch.float16
        timeline = log.timeline
        op_names: dict[Any, str] = {}

        class Recording(TorchFunctionMode):
            def __torch_function__(
                self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
            ) -> Any:
                log.torch_calls += 1
                if log.stopped:  # past the step limit: run as plain python (the remap still applies)
                    return remap(func, args, kwargs or {}) if remap else func(*args, **(kwargs or {}))
                if func in watched:
                    recorder.frame = sys._getframe(1)
                    try:
                        with dispatch:
                            result = remap(func, args, kwargs or {}) if remap else func(*args, **(kwargs or {}))
                    finally:
                        recorder.frame = None
                elif remap is not None:
                    result = remap(func, args, kwargs or {})
                else:
                    result = func(*args, **(kwargs or {}))
                if grad_enabled():
                    tensors = _tensors(result)
                    nodes: list[Any] = [tensor.grad_fn for tensor in tensors if tensor.grad_fn is not None]
                    if nodes:
                        if any(tensor.dtype is float16 for tensor in tensors):
                            for node in nodes:
                                node.metadata[FP16_KEY] = True
                        site = user_code.caller(sys._getframe(1))
                        if site is not None:
                            _tag(nodes, site, log)
                            if timeline is not None and log.steps < TIMELINE_STEPS:
                                name = op_names.get(func) or op_names.setdefault(func, _op_name(func))
                                timeline[(log.steps + 1, site, name, dtype_name(tensors[0].dtype))] += 1
                return result

        return Recording()

    @contextlib.contextmanager
    def backward_pass(self, measure: bool) -> Iterator[None]:
        """Around one backward pass: with `measure`, count fp16 backward ops and sample their underflow."""
        if not measure:
            yield
            return
        self.measuring, self.op_index = True, 0
        self.sample_offset = (self.sample_offset + 1) % SAMPLE_EVERY
        self.fp16_ops = self.fp16_values = 0
        try:
            with self._dispatch:
                yield
        finally:
            self.measuring = False
            # One read per pass (a device sync on CUDA), not one per op.
            underflowed = sum(int(lost.item()) for lost in self._lost.values())
            self._lost.clear()
            self.log.last_backward = (self.fp16_ops, self.fp16_values, underflowed)

    def measure_underflow(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Count fp16 outputs that are subnormal, or zero where the same op in fp32 is not."""
        torch = self._torch
        if func._schema.is_mutable:
            return
        try:
            reference = func(*_upcast_fp16(args), **{key: _upcast_fp16(value) for key, value in kwargs.items()})
        except (RuntimeError, TypeError):
            return  # an op that insists on its original dtypes: nothing to compare with
        for got, want in zip(_tensors(result), _tensors(reference), strict=False):
            if got.dtype is torch.float16 and got.shape == want.shape:
                # Lost: a value fp32 holds that fp16 makes subnormal or zero, i.e. 0 < |fp32| < 2**-14.
                # Read off the reference alone (the fp16 result rounds the same values).
                magnitude = want.abs()
                lost = ((magnitude < FP16_SMALLEST_NORMAL) & (magnitude > 0)).sum()
                total = self._lost.get(got.device)
                if total is None:
                    self._lost[got.device] = lost
                else:
                    total.add_(lost)
                self.fp16_values += got.numel()

    def site_of_watched_call(self) -> Site | None:
        frame = self.frame
        return self.user_code.caller(frame) if frame is not None else self.user_code.caller(sys._getframe(2))


def _op_name(func: Any) -> str:
    """A torch function as a script calls it: `linear`, `Tensor.__add__`, `Tensor.T` (a property)."""
    owner = getattr(func, "__self__", None)
    if getattr(func, "__name__", None) == "__get__" and hasattr(owner, "__objclass__"):
        return f"Tensor.{getattr(owner, '__name__', '?')}"  # a property's getter: `x.T`, `x.real`
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
    for prefix, shown in (("_TensorBase.", "Tensor."), ("TensorBase.", "Tensor."), ("_VariableFunctionsClass.", "")):
        if name.startswith(prefix):
            return shown + name.removeprefix(prefix)
    return name


def _tag(pending: list[Any], site: Site, log: RunLog) -> None:
    """Tag the nodes this call created: walk back until nodes already tagged by earlier calls."""
    while pending:
        node = pending.pop()
        metadata = node.metadata
        if SITE_KEY in metadata or node.name() == "torch::autograd::AccumulateGrad":
            continue  # a parameter's AccumulateGrad outlives the step: never tag it
        metadata[SITE_KEY] = site
        metadata[REGION_KEY] = log.region
        pending.extend(child for child, _ in node.next_functions if child is not None)


def _op_recorder(recorder: Recorder) -> Any:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    log = recorder.log
    recorded = {getattr(torch.ops.aten, name.removeprefix("aten.")): name for name in RECORDED_OPS}
    float16 = torch.float16

    def names(values: Any) -> tuple[str, ...]:
        return tuple(dtype_name(tensor.dtype) for tensor in _tensors(values))

    class OpRecorder(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # no dynamo-disabling wrapper per op: torch.compile runs eagerly under verify

        def __torch_dispatch__(
            self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
        ) -> Any:
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            if recorder.measuring and torch._C._current_autograd_node() is not None:
                if result.dtype is float16 if isinstance(result, torch.Tensor) else _any_fp16(result):
                    index = recorder.op_index
                    recorder.op_index += 1
                    recorder.fp16_ops += 1
                    if index % SAMPLE_EVERY == recorder.sample_offset:
                        recorder.measure_underflow(func, args, kwargs, result)
                return result
            name = recorded.get(func.overloadpacket)
            if name is None:
                return result
            site = recorder.site_of_watched_call()
            if site is None:
                return result
            if name == REDUCED_LOSS_OP and len(args) > 3 and args[3] != 0:
                name = REDUCED_LOSS  # a mean/sum loss: its log_softmax is a training loss, not log-probs
            region = log.region
            device = region.device if region is not None else log.device
            off = region is not None and region.device_type == "cuda" and region.device == "cpu"
            log.op_calls[OpCall(site, name, names(args), names(result), False, device, off)] += 1
            return result

    return OpRecorder()


def _any_fp16(result: Any) -> bool:
    import torch

    return any(tensor.dtype is torch.float16 for tensor in _tensors(result))
