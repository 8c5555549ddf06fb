from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.values import Kind, Precision, Region
from mplint.findings import Severity
from mplint.rule import Rule

if TYPE_CHECKING:
    from mplint.run.engine import FileContext


class ScalerWithBf16(Rule):
    """A GradScaler that is always on, in a file whose mixed precision is bfloat16 only.

    ## What it does
    Finds a `GradScaler(...)` (either API, `ShardedGradScaler`) constructed always enabled (no
    `enabled=`, or `enabled=True`) in a file where every autocast region is bfloat16, or, with no
    float16 region, whose optimizer updates bfloat16 parameters. A scaler whose `enabled=`
    depends on the run (`GradScaler(enabled=(dtype == "float16"))` as nanoGPT does,
    `enabled=args.fp16`) is not reported, nor is one next to any float16 or unresolved region.

    ## Why is this bad
    Loss scaling exists because float16 has 5 exponent bits: small gradients underflow. bfloat16
    has float32's 8 exponent bits and does not underflow there, so the scaler buys nothing. It costs
    an unscale and an inf/NaN check of every gradient on every step, starts by skipping steps
    while it searches a scale, and hides the intent of the code (a reader assumes fp16 is in play).
    PyTorch's AMP recipes pair `GradScaler` with float16 only.

    ## Example
    ```python
    scaler = torch.amp.GradScaler("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(x).loss
    scaler.scale(loss).backward()
    ```

    ## Fix
    ```python
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(x).loss
    loss.backward()
    optimizer.step()
    ```
    Or tie the scaler to the dtype: `GradScaler("cuda", enabled=(amp_dtype == torch.float16))`.
    """

    CODE = "MP106"
    NAME = "scaler-with-bf16"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "GradScaler always enabled, but {evidence}: bfloat16 has float32's exponent range and needs no loss "
        "scaling; drop the scaler or use `enabled=(dtype == torch.float16)`"
    )
    TRIGGERS = frozenset({"Scaler"})
    VALID = (
        """
import torch
dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
scaler = torch.amp.GradScaler("cuda", enabled=(dtype == torch.float16))
with torch.autocast("cuda", dtype=dtype):
    loss = model(x).mean()
scaler.scale(loss).backward()
""",
    )
    INVALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(x).mean()
scaler.scale(loss).backward()
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.scalers: list[cst.Call] = []
        self.regions: list[Region] = []
        self.bf16_optimizers: list[cst.Call] = []

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            if fact.path != self.context.path:
                continue
            if self.precision.scaler_enabled(node) is True:  # `GradScaler()`, `GradScaler("cuda")`, `enabled=True`
                self.scalers.append(node)
            region = fact.result.payload if fact.result.kind is Kind.AUTOCAST else None
            if isinstance(region, Region) and region.enabled is not False:
                self.regions.append(region)
            params = fact.arg(0, "params") if fact.result.kind is Kind.OPTIMIZER else None
            if params is not None and params.kind is Kind.PARAMS and params.precision is Precision.BF16:
                self.bf16_optimizers.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        evidence = self._bf16_evidence()
        if evidence is None:
            return
        for scaler in dict.fromkeys(self.scalers):
            self.report(scaler, self.MESSAGE.format(evidence=evidence))

    def _bf16_evidence(self) -> str | None:
        if any(region.precision is not Precision.BF16 for region in self.regions):
            return None
        if self.regions:
            lines = dict.fromkeys(str(self.line_of(region.node, region.path)) for region in self.regions)
            return f"every autocast region of the file is bfloat16 (line {', '.join(lines)})"
        if self.bf16_optimizers:
            return f"the optimizer at line {self.line_of(self.bf16_optimizers[0])} updates bfloat16 parameters"
        return None
