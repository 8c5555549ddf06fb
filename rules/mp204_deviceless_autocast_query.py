from __future__ import annotations

from typing import TYPE_CHECKING, TypeGuard

import libcst as cst

from mplint.analysis.facts import CallFact
from mplint.analysis.values import Kind, Region
from mplint.findings import Severity
from mplint.rule import Rule

if TYPE_CHECKING:
    from mplint.run.engine import FileContext

# Queries that answer for CUDA whatever region is active (deprecated since torch 2.4).
GPU_ONLY_QUERIES = frozenset({"torch.get_autocast_gpu_dtype", "torch.is_autocast_gpu_enabled"})


class DevicelessAutocastQuery(Rule):
    """An autocast state query that does not name the device it asks about.

    ## What it does
    Finds `torch.is_autocast_enabled()` called without a device type, and
    `torch.get_autocast_gpu_dtype()` / `torch.is_autocast_gpu_enabled()` called inside, or in a file
    that opens, an autocast region whose device is not CUDA (`torch.autocast("cpu")`, `"xpu"`,
    `"mps"`, or a device chosen at run time such as `device.type`).

    ## Why is this bad
    Without an argument `torch.is_autocast_enabled()` reports the CUDA autocast state only: inside
    `torch.autocast("cpu", dtype=torch.bfloat16)` it returns `False` (torch 2.13:
    `torch.is_autocast_enabled()` is `False` there while `torch.is_autocast_enabled("cpu")` is
    `True`). Custom ops and attention code that branch on it (`if torch.is_autocast_enabled(): x =
    x.to(torch.get_autocast_gpu_dtype())`) skip their cast on CPU/XPU/MPS and meet mixed
    bf16/fp32 inputs, or cast CPU tensors to CUDA's float16. The `*_gpu_*` queries likewise always
    answer for CUDA, and torch 2.4 deprecated them (`torch.get_autocast_gpu_dtype() is deprecated.
    Please use torch.get_autocast_dtype('cuda') instead`).

    ## Example
    ```python
    def forward(self, x):
        if torch.is_autocast_enabled():
            x = x.to(torch.get_autocast_gpu_dtype())
        return fused_op(x)
    ```

    ## Fix
    Ask about the device the tensors are on (torch 2.4+):
    ```python
    def forward(self, x):
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            x = x.to(torch.get_autocast_dtype(device_type))
        return fused_op(x)
    ```
    """

    CODE = "MP204"
    NAME = "deviceless-autocast-query"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`torch.is_autocast_enabled()` without a device answers for CUDA only{inside}; "
        "pass the device type: `torch.is_autocast_enabled(x.device.type)`"
    )
    GPU_MESSAGE = (
        "`{query}()` answers for CUDA, but {where}; "
        "use `torch.get_autocast_dtype(device_type)` / `torch.is_autocast_enabled(device_type)`"
    )
    TRIGGERS = frozenset({"is_autocast_enabled", "get_autocast_gpu_dtype", "is_autocast_gpu_enabled"})
    VALID = (
        """
import torch
def cast_for_autocast(x):
    if torch.is_autocast_enabled(x.device.type):
        return x.to(torch.get_autocast_dtype(x.device.type))
    return x
""",
    )
    INVALID = (
        """
import torch
def cast_for_autocast(x):
    if torch.is_autocast_enabled():
        return x.half()
    return x
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.gpu_queries: list[tuple[cst.Call, CallFact]] = []
        self.other_device_region: Region | None = None

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            region = fact.result.payload if fact.result.kind is Kind.AUTOCAST else None
            if isinstance(region, Region) and region.device != "cuda" and self.other_device_region is None:
                self.other_device_region = region
            if fact.function == "torch.is_autocast_enabled" and not node.args:
                inside = (
                    f" (here inside a {fact.region.describe()} region, where it is False)"
                    if _non_cuda(fact.region)
                    else ""
                )
                self.report(node, self.MESSAGE.format(inside=inside))
                return
            if fact.function in GPU_ONLY_QUERIES:
                self.gpu_queries.append((node, fact))
                return

    def leave_Module(self, original_node: cst.Module) -> None:
        for node, fact in self.gpu_queries:
            if _non_cuda(fact.region):
                where = f"it runs inside a {fact.region.describe()} region"
            elif self.other_device_region is not None:
                line = self.line_of(self.other_device_region.node, self.other_device_region.path)
                where = f"this file opens a {self.other_device_region.describe()} region (line {line})"
            else:
                continue
            self.report(node, self.GPU_MESSAGE.format(query=fact.function, where=where))


def _non_cuda(region: Region | None) -> TypeGuard[Region]:
    return region is not None and region.enabled is not False and region.device != "cuda"
