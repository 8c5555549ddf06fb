from __future__ import annotations

import libcst as cst

from mplint.analysis.facts import ReplicatedCall
from mplint.analysis.values import Precision
from mplint.rule import Rule


class DataParallelUnderBf16Autocast(Rule):
    """An `nn.DataParallel` model is called inside a bfloat16 CUDA autocast region: its replicas run float16.

    ## What it does
    Finds a call of a module wrapped in `nn.DataParallel` (`model = nn.DataParallel(Net())`, then
    `model(x)`, `self.model(x)`, `model.forward(x)`) made inside `torch.autocast("cuda",
    dtype=torch.bfloat16)` (or `torch.cuda.amp.autocast(dtype=torch.bfloat16)`, or a helper that
    opens one), when the wrapped module's own `forward` does not open an autocast region.

    Not reported: a `forward` that enters its own region (`with torch.autocast("cuda",
    dtype=torch.bfloat16):` inside it, or an autocast decorator: each replica's thread then sets
    the dtype itself); `DistributedDataParallel` (one process per GPU, no threads); float16 regions
    (float16 is the thread default); `device_ids=[0]` (one replica, run in the calling thread); a
    CPU autocast region (`torch.is_autocast_enabled()` asks about CUDA, so the replicas run with
    autocast off, DataParallel or not); models whose wrapping is not visible.

    ## Why is this bad
    With more than one GPU, `DataParallel.forward` runs each replica in its own thread
    (`torch/nn/parallel/parallel_apply.py`, torch 2.13). The thread re-enters autocast as
    `torch.amp.autocast(device_type, enabled=autocast_enabled)`: the enabled flag is passed on,
    the dtype is not, and autocast's dtype is thread-local, so each replica gets the thread default,
    float16. The model the author configured for bfloat16 computes its forward in float16, with no
    GradScaler (none is needed for bf16): activations above 65504 overflow to inf and small
    gradients underflow to zero, on multi-GPU runs only. torch's autocast docs warn that the state
    is thread-local and that this affects DataParallel (pytorch/pytorch#60706); the same
    thread-local default turned bf16 into fp16 in autograd's worker threads
    (pytorch/pytorch#125186).

    ## Example
    ```python
    model = nn.DataParallel(Net().cuda())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = criterion(model(images), labels)
    ```

    ## Fix
    Open the region inside the module's `forward`, so every replica's thread sets the dtype:
    ```python
    class Net(nn.Module):
        def forward(self, x):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                ...
    ```
    Or use `DistributedDataParallel` (one process per GPU), which keeps the caller's region.
    """

    CODE = "MP206"
    NAME = "data-parallel-under-bf16-autocast"
    MESSAGE = (
        "DataParallel model (wrapped at {path}:{line}) called inside {region}: its replicas run in threads that "
        "re-enter autocast with the enabled flag only, and the thread-local dtype defaults to float16, so the "
        "forward runs in float16 with no loss scaling; open the bf16 region inside the module's forward, or "
        "use DistributedDataParallel"
    )
    TRIGGERS = frozenset({"DataParallel"})
    SINKS = frozenset({"autocast"})
    VALID = (
        """
import torch
import torch.nn as nn
model = nn.DataParallel(nn.Linear(8, 8).cuda())
with torch.autocast("cuda", dtype=torch.float16):
    out = model(x)
""",
    )
    INVALID = (
        """
import torch
import torch.nn as nn
model = nn.DataParallel(nn.Linear(8, 8).cuda())
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = model(x)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for call in self.precision.replicated_calls(node):
            if self._replicas_lose_dtype(call):
                region = call.region
                self.report(
                    node,
                    self.MESSAGE.format(
                        path=call.wrapper_path,
                        line=self.line_of(call.wrapper, call.wrapper_path),
                        region=region.describe(),
                    ),
                    condition=call.condition,
                )
                return

    def _replicas_lose_dtype(self, call: ReplicatedCall) -> bool:
        region = call.region
        if region.device != "cuda" or region.precision is not Precision.BF16 or region.enabled is not True:
            return False
        if _single_device(call.wrapper):
            return False
        if call.module is not None:
            forward = call.module.method("forward")
            if forward is None or self.precision.opens_autocast(forward):
                return False
        return True


def _single_device(wrapper: cst.Call) -> bool:
    """`nn.DataParallel(model, device_ids=[0])` (or `[0]` given positionally): one replica, run in the
    calling thread. The list as written: `device_ids` is the one parameter of DataParallel a list is
    passed to, so a one-element list or tuple anywhere in the call is it."""
    return any(_one_element(arg.value) for arg in wrapper.args)


def _one_element(node: cst.BaseExpression) -> bool:
    return isinstance(node, (cst.List, cst.Tuple)) and len(node.elements) == 1
