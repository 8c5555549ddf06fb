from __future__ import annotations

import libcst as cst

from mplint.analysis.facts import CallFact
from mplint.analysis.values import Kind, Precision, Value
from mplint.findings import Severity
from mplint.rule import Rule


class BackwardInsideAutocast(Rule):
    """`.backward()` or an optimizer step runs inside an autocast region.

    ## What it does
    Finds `loss.backward()`, `scaler.scale(loss).backward()`, `torch.autograd.backward(loss)`,
    `optimizer.step()` and `scaler.step(optimizer)` executed while an autocast region is active:
    inside the `with torch.autocast(...)` block (or `torch.cuda.amp.autocast()`, a region entered
    as `ctx = torch.autocast(...)`; `with ctx:`, a function decorated with `@torch.autocast(...)`,
    or a helper called from inside such a block). A region whose `enabled=` depends on a flag
    counts (the bug is there whenever the flag is on); a nested `autocast(..., enabled=False)`
    around the backward does not.

    Not reported: `accelerator.backward(loss)` inside `with accelerator.autocast():`. Accelerate
    documents `accelerator.autocast()` as a context for extra forward/loss computations; the
    precision model does not resolve it to a region (its device and dtype come from the
    `Accelerator` configuration, and without mixed precision it is a no-op), so the rule stays
    quiet rather than guess. Lightning, HF `Trainer` and DeepSpeed run the backward themselves.

    ## Why is this bad
    PyTorch's autocast documentation: "autocast should wrap only the forward pass(es) of your
    network, including the loss computation(s). Backward passes under autocast are not
    recommended. Backward ops run in the same type that autocast used for corresponding forward
    ops." The autocast state is thread-local state that autograd carries into the backward pass,
    so ops the backward builds (gradient hooks, `create_graph=True` double backward, gradient
    clipping norms, the optimizer's own arithmetic in `step()`) are re-cast to fp16/bf16 by the
    region's policy: extra casts, silently lower-precision optimizer math, and gradients that
    differ from the documented recipe, which `GradScaler`'s inf checks were not designed around.

    ## Example
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    ```

    ## Fix
    Leave the region after the loss is computed:
    ```python
    for x, y in loader:
        optimizer.zero_grad()
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    ```
    """

    CODE = "MP201"
    NAME = "backward-inside-autocast"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "`{step}` runs inside the {region} opened at {path}:{line}: autocast should wrap only the "
        "forward pass and the loss; leave the region before the backward pass and the optimizer step"
    )
    TRIGGERS = frozenset({"autocast"})
    VALID = (
        """
import torch
model = torch.nn.Linear(4, 4)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(torch.randn(2, 4)).mean()
loss.backward()
optimizer.step()
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(4, 4)
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(torch.randn(2, 4)).mean()
    loss.backward()
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            region = fact.region
            step = _training_step(fact)
            if step is None or region is None or region.enabled is False:
                continue
            line = self.line_of(region.node, region.path)
            self.report(node, self.MESSAGE.format(step=step, region=region.describe(), path=region.path, line=line))
            return


def _training_step(fact: CallFact) -> str | None:
    """How to name `fact` when it is a backward pass or an optimizer step, else None."""
    if fact.method == "backward" and _is_loss(fact.receiver):
        return "scaler.scale(loss).backward()" if fact.receiver.scaled else ".backward()"
    if fact.function == "torch.autograd.backward":
        return "torch.autograd.backward(...)"
    if fact.method == "step" and fact.receiver.kind is Kind.OPTIMIZER:
        return "optimizer.step()"
    if fact.method == "step" and (fact.receiver.kind is Kind.SCALER or _first_is_optimizer(fact)):
        return "scaler.step(optimizer)"
    return None


def _is_loss(value: Value) -> bool:
    """A tensor the model tracked (computed under a region, scaled, or of known precision); an
    untracked receiver may be `accelerator` or `fabric`, whose `backward(loss)` is theirs to run."""
    if value.kind is Kind.TENSOR:
        return True
    return value.kind is Kind.ANY and (
        value.region is not None or value.scaled or value.precision is not Precision.UNKNOWN
    )


def _first_is_optimizer(fact: CallFact) -> bool:
    first = fact.arg(0, "optimizer")
    return first is not None and first.kind is Kind.OPTIMIZER
