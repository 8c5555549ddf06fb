"""The recorder: every aten op's dtypes by the user's `file:line`, and fp16 underflow in backward.

Two small modes work together. `GraphTagger` (a TorchFunctionMode, above autograd) writes the
user's line and the active autocast region into the `metadata` of each new autograd node, because
backward runs where no user frame is on the stack (on CUDA, on another thread). `OpRecorder`
(a TorchDispatchMode, below autograd and autocast, so it sees what actually ran) attributes a
forward op to the innermost user frame and a backward op to the node being executed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mplint.runtime.hooks import REGION_KEY, SITE_KEY, dtype_name
from mplint.runtime.observations import OpCall, RunLog, Site
from mplint.runtime.sites import UserCode

if TYPE_CHECKING:
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._python_dispatch import TorchDispatchMode

FP16_SMALLEST_NORMAL = 6.103515625e-05  # 2**-14: below it fp16 values are subnormal


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


def graph_tagger(log: RunLog, user_code: UserCode) -> TorchFunctionMode:
    from torch.overrides import TorchFunctionMode

    class GraphTagger(TorchFunctionMode):
        def __torch_function__(
            self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
        ) -> Any:
            result = func(*args, **(kwargs or {}))
            nodes = [tensor.grad_fn for tensor in _tensors(result) if tensor.grad_fn is not None]
            if nodes:
                site = user_code.caller()
                if site is not None:
                    _tag(nodes, site, log)
            return result

    return GraphTagger()


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


def op_recorder(log: RunLog, user_code: UserCode) -> TorchDispatchMode:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    op_names: dict[Any, str] = {}
    dtype_names: dict[torch.dtype, str] = {}

    def names(values: Any) -> tuple[str, ...]:
        found = []
        for tensor in _tensors(values):
            name = dtype_names.get(tensor.dtype)
            if name is None:
                name = dtype_names[tensor.dtype] = dtype_name(tensor.dtype)
            found.append(name)
        return tuple(found)

    def measure_underflow(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        """Count fp16 outputs that are subnormal, or zero where the same op in fp32 is not."""
        if func._schema.is_mutable:
            return
        try:
            reference = func(*_upcast_fp16(args), **{key: _upcast_fp16(value) for key, value in kwargs.items()})
        except (RuntimeError, TypeError):
            return  # an op that insists on its original dtypes: nothing to compare with
        for got, want in zip(_tensors(result), _tensors(reference), strict=False):
            if got.dtype is torch.float16 and got.shape == want.shape:
                magnitude = got.abs()
                lost = (magnitude < FP16_SMALLEST_NORMAL) & ((magnitude > 0) | (want != 0))
                log.underflowed += int(lost.sum())
                log.fp16_values += got.numel()

    class OpRecorder(TorchDispatchMode):
        def __torch_dispatch__(
            self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
        ) -> Any:
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            # None outside backward, and `metadata` is a dict, not the method torch's stubs say.
            node: Any = torch._C._current_autograd_node()
            site = node.metadata.get(SITE_KEY) if node is not None else user_code.caller()
            if site is None:
                return result
            outputs = names(result)
            name = op_names.get(func)
            if name is None:
                name = op_names[func] = str(func.overloadpacket)
            if name == REDUCED_LOSS_OP and len(args) > 3 and args[3] != 0:
                name = REDUCED_LOSS  # a mean/sum loss: its log_softmax is a training loss, not log-probs
            region = node.metadata.get(REGION_KEY) if node is not None else log.region
            device = region.device if region is not None else log.device
            off = region is not None and region.device_type == "cuda" and region.device == "cpu"
            log.op_calls[OpCall(site, name, names(args), outputs, node is not None, device, off)] += 1
            if node is not None and "float16" in outputs:
                measure_underflow(func, args, kwargs, result)
            return result

    return OpRecorder()


# `F.cross_entropy(..., reduction="mean"|"sum")` dispatches `_log_softmax` then `nll_loss_forward`
# with reduction != 0: recorded under its own name so the join can tell it from per-token log-probs.
REDUCED_LOSS_OP = "aten.nll_loss_forward"
REDUCED_LOSS = "aten.nll_loss_forward(reduced)"
