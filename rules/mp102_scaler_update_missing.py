from __future__ import annotations

import libcst as cst

from mplint.analysis import paths as loops
from mplint.analysis.events import Event, EventKind, Path
from mplint.analysis.paths import Trace
from mplint.rule import Rule
from mplint.tree import Located


class ScalerUpdateMissing(Rule):
    """`scaler.step(optimizer)` runs in a training loop, but `scaler.update()` can be skipped.

    ## What it does
    Follows every path through one iteration of a training loop (a loop that runs
    `scaler.scale(loss).backward()`, directly or in a helper) and finds `scaler.step(...)` after
    which the iteration can end without `scaler.update()` on the same scaler: the update is missing,
    or sits under a condition (`if step % log_every == 0:`, an early `continue`) that can skip it.
    A path that leaves the function right after the step is not reported (its caller may update).

    ## Why is this bad
    `update()` is what makes loss scaling dynamic: it halves the scale after an overflow and
    grows it after 2000 clean steps. Without it the scale stays at its initial 65536 forever; one
    overflow and every later `scaler.step` is skipped (inf gradients, no step, no recovery), or the
    scale never grows and small gradients stay underflowed. PyTorch also keeps the per-optimizer
    state until `update()`: the next iteration's `unscale_` raises "unscale_() is being called
    after step()".

    ## Example
    ```python
    for step, batch in enumerate(loader):
        scaler.scale(model(batch)).backward()
        scaler.step(optimizer)
        if step % 100 == 0:
            scaler.update()
    ```

    ## Fix
    ```python
    for step, batch in enumerate(loader):
        scaler.scale(model(batch)).backward()
        scaler.step(optimizer)
        scaler.update()
    ```
    Call `update()` once per iteration, right after the optimizer step(s), on every path.
    """

    CODE = "MP102"
    NAME = "scaler-update-missing"
    MESSAGE = (
        "`scaler.step(...)` here can end the training iteration without `scaler.update()` ({why}): the "
        "loss scale never adapts; call `scaler.update()` after every step"
    )
    TRIGGERS = frozenset({".scale(", "unscale_", "Scaler"})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
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
for x, y in loader:
    with torch.autocast("cuda"):
        loss = model(x, y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        # A step met from several traces (a helper's) is one finding: the engine merges one place's reports.
        for trace in loops.traces(node, self.precision):
            for step in trace.nodes(EventKind.SCALER_STEP):
                if not _can_skip_update(trace, step):
                    continue
                updates = trace.nodes(EventKind.UPDATE)
                why = "it runs only under a condition" if updates else "the loop never calls it"
                self.report(step, self.MESSAGE.format(why=why), path=trace.file_of(step))


def _can_skip_update(trace: Trace, step: Located) -> bool:
    return any(_skips_update(trace, path, index) for path, index in trace.occurrences(step))


def _skips_update(trace: Trace, path: Path, index: int) -> bool:
    event: Event = path[index]
    training = trace.training_loops() & frozenset(event.loops)
    if not training:
        return False
    rest = loops.same_step_after(path, index, training)
    return rest is not None and not any(
        later.kind is EventKind.UPDATE and later.scaler == event.scaler for later in rest
    )
