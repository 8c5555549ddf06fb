from __future__ import annotations

import libcst as cst

from mplint.analysis import paths as loops
from mplint.analysis.events import Event, EventKind, Path
from mplint.analysis.paths import Trace
from mplint.rule import Rule
from mplint.tree import Located


class ScalerUpdatePerOptimizer(Rule):
    """`scaler.update()` runs more than once in one training iteration.

    ## What it does
    Follows every path through one iteration of a training loop and finds a second
    `scaler.update()` on the same scaler before the iteration ends: typically one update after
    each optimizer's `scaler.step(...)` (GANs, actor/critic, an encoder and a head with their own
    optimizers), or an update inside a `for optimizer in optimizers:` loop. Two different
    `GradScaler`s, each updated once, are fine.

    ## Why is this bad
    PyTorch's AMP examples ("Working with Multiple Models, Losses, and Optimizers"): "`scaler.update`
    should only be called once, after all optimizers used this iteration have been stepped".
    `update()` consumes the inf/NaN checks recorded by every `scaler.step` since the last update and
    resets them: the first update halves or grows the scale on one optimizer's evidence, the second
    finds no recorded checks for the others (or adapts the scale twice per iteration), so the
    scale drifts and overflowing steps of the later optimizers go unnoticed.

    ## Example
    ```python
    scaler.scale(loss_d).backward()
    scaler.step(opt_d)
    scaler.update()
    scaler.scale(loss_g).backward()
    scaler.step(opt_g)
    scaler.update()
    ```

    ## Fix
    ```python
    scaler.scale(loss_d).backward()
    scaler.step(opt_d)
    scaler.scale(loss_g).backward()
    scaler.step(opt_g)
    scaler.update()
    ```
    """

    CODE = "MP103"
    NAME = "scaler-update-per-optimizer"
    MESSAGE = (
        "second `scaler.update()` in the same training iteration (the first at line {line}): update "
        "once, after every optimizer of the iteration has been stepped"
    )
    TRIGGERS = frozenset({".scale(", "unscale_", "Scaler"})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
for real in loader:
    scaler.scale(d_loss(real)).backward()
    scaler.step(opt_d)
    scaler.scale(g_loss(real)).backward()
    scaler.step(opt_g)
    scaler.update()
""",
    )
    INVALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
for real in loader:
    scaler.scale(d_loss(real)).backward()
    scaler.step(opt_d)
    scaler.update()
    scaler.scale(g_loss(real)).backward()
    scaler.step(opt_g)
    scaler.update()
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        # An update met from several traces (a helper's) is one finding: the engine merges one place's reports.
        for trace in loops.traces(node, self.precision):
            for update in trace.nodes(EventKind.UPDATE):
                earlier = _earlier_update(trace, update)
                if earlier is not None:
                    line = self.line_of(earlier.node, earlier.file)
                    self.report(update, self.MESSAGE.format(line=line), path=trace.file_of(update))


def _earlier_update(trace: Trace, update: Located) -> Event | None:
    for path, index in trace.occurrences(update):
        found = _update_before(trace, path, index)
        if found is not None:
            return found
    return None


def _update_before(trace: Trace, path: Path, index: int) -> Event | None:
    event = path[index]
    for earlier in reversed(loops.same_step_before(path, index, loops.boundaries(trace, event))):
        # An update inside a loop that the later one is not in (the accumulation flush after the
        # loop, a once-per-epoch update after the inner loop) ran in an iteration that is over.
        outside = earlier.loops != event.loops[: len(earlier.loops)]
        if earlier.kind is EventKind.UPDATE and earlier.scaler == event.scaler and not outside:
            return earlier
    return None
