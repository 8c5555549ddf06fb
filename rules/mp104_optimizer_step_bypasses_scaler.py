from __future__ import annotations

import libcst as cst

from mplint.analysis import paths as loops
from mplint.analysis.events import Event, EventKind, Path
from mplint.analysis.paths import Trace
from mplint.rule import Rule
from mplint.tree import Located


class OptimizerStepBypassesScaler(Rule):
    """`optimizer.step()` applies gradients that came from a scaled backward.

    ## What it does
    Follows every path through a training step and finds `optimizer.step()` called directly
    when the latest backward before it, on every path that reaches it, was
    `scaler.scale(loss).backward()` and nothing unscaled that optimizer's gradients in between:
    the scaler is never asked to step (`scaler.step(optimizer)` is missing or used for another
    optimizer), or the optimizer is stepped a second time after `scaler.step(optimizer)`. An
    optimizer is a value the precision model tracks from its construction (`torch.optim.*`,
    bitsandbytes, apex, ...), or what a scaler steps or unscales. Paths where the loss was not
    scaled (`if use_amp: ... else: loss.backward(); optimizer.step()`) are fine, and so is a step
    after NVIDIA apex's `with amp.scale_loss(loss, optimizer) as scaled_loss:` block: its exit
    unscales the gradients and makes the optimizer skip a step that overflowed (not with
    `delay_unscale=True`, which leaves them scaled for a later block).

    ## Why is this bad
    The gradients are still multiplied by the loss scale (65536 at first): the step is 65536 times
    too large (Adam partly hides it, SGD diverges at once), overflowing gradients (inf/NaN) are
    applied instead of skipped, and after `scaler.step(optimizer)` a second `optimizer.step()`
    applies every update twice. `scaler.step(optimizer)` unscales, checks for inf/NaN and only
    then calls `optimizer.step()`.

    ## Example
    ```python
    scaler.scale(loss).backward()
    optimizer.step()
    scaler.update()
    ```

    ## Fix
    ```python
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    ```
    Step every optimizer whose gradients came from a scaled loss through `scaler.step(...)`.
    """

    CODE = "MP104"
    NAME = "optimizer-step-bypasses-scaler"
    MESSAGE = "`{optimizer}.step()` after a scaled backward (line {line}) {what}: use `scaler.step({optimizer})`"
    UNSCALED = "applies gradients still multiplied by the loss scale, and skips the inf/NaN check"
    TWICE = "steps again after `scaler.step({optimizer})` already did: every update is applied twice"
    TRIGGERS = frozenset({".scale(", "unscale_", "Scaler", "scale_loss("})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    with torch.autocast("cuda"):
        loss = model(x, y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
""",
    )
    INVALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    with torch.autocast("cuda"):
        loss = model(x, y)
    scaler.scale(loss).backward()
    optimizer.step()
    scaler.update()
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        # A step met from several traces (a helper's) is one finding: the engine merges one place's reports.
        for trace in loops.traces(node, self.precision):
            for step in trace.nodes(EventKind.OPTIMIZER_STEP):
                found = _scaled_on_every_path(trace, step)
                if found is None:
                    continue
                backward, twice = found
                optimizer = _receiver_text(step)
                what = (self.TWICE if twice else self.UNSCALED).format(optimizer=optimizer)
                line = self.line_of(backward.node, backward.file)
                message = self.MESSAGE.format(optimizer=optimizer, line=line, what=what)
                self.report(step, message, path=trace.file_of(step))


def _scaled_on_every_path(trace: Trace, step: Located) -> tuple[Event, bool] | None:
    """The scaled backward before `step` on every path, and whether the scaler stepped it already."""
    found = None
    twice = True
    for path, index in trace.occurrences(step):
        backward = _scaled_backward(path, index)
        if backward is None:
            return None
        optimizer = path[index].optimizer
        twice = twice and any(
            event.optimizer == optimizer for event in loops.between(path, backward, index, EventKind.SCALER_STEP)
        )
        found = found or path[backward]
    return (found, twice) if found is not None else None


def _scaled_backward(path: Path, index: int) -> int | None:
    backward = loops.last_backward(path, index)
    if backward is None or path[backward].kind is not EventKind.SCALED_BACKWARD:
        return None
    return None if loops.unscaled_between(path, backward, index, path[index].optimizer) else backward


def _receiver_text(step: Located) -> str:
    """`self.optimizer` of `self.optimizer.step()` (an optimizer step is always a method call)."""
    func = step.func if isinstance(step, cst.Call) else None
    return cst.Module([]).code_for_node(func.value) if isinstance(func, cst.Attribute) else "optimizer"
