from __future__ import annotations

import libcst as cst

from mplint.analysis import paths as loops
from mplint.analysis.events import EventKind, Path
from mplint.analysis.paths import Trace
from mplint.rule import Rule
from mplint.tree import Located


class UnscaleEveryMicrobatch(Rule):
    """`scaler.unscale_(optimizer)` runs on every micro-batch, but the step only on accumulation boundaries.

    ## What it does
    Finds `scaler.unscale_(optimizer)` that runs unconditionally in each iteration of a loop
    while `scaler.step`/`scaler.update()` run only under a gradient-accumulation condition
    (`if (step + 1) % accum_steps == 0:`) or after an inner micro-batch loop: some path through
    two consecutive iterations reaches the same `unscale_` again with no `scaler.update()` in
    between. An `unscale_` inside the accumulation condition is the correct pattern and is not
    reported, nor is one whose iteration always ends with an update.

    ## Why is this bad
    `unscale_` records that the optimizer's gradients are unscaled until the next `update()`. The
    second micro-batch's call raises `RuntimeError: unscale_() has already been called on this
    optimizer since the last update()` (or "unscale_() is being called after step()"). Where
    `update()` runs every micro-batch but the step does not, the gradients accumulated so far are
    divided by the scale again on every micro-batch while new scaled gradients are added to them:
    the step applies a meaningless mix.

    ## Example
    ```python
    for step, batch in enumerate(loader):
        scaler.scale(model(batch) / accum_steps).backward()
        scaler.unscale_(optimizer)
        if (step + 1) % accum_steps == 0:
            clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    ```

    ## Fix
    ```python
    for step, batch in enumerate(loader):
        scaler.scale(model(batch) / accum_steps).backward()
        if (step + 1) % accum_steps == 0:
            scaler.unscale_(optimizer)
            clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    ```
    """

    CODE = "MP105"
    NAME = "unscale-every-microbatch"
    MESSAGE = (
        "`scaler.unscale_(...)` runs on every iteration, but the next iteration can reach it again before "
        '`scaler.update()` (line {line} updates only on accumulation boundaries): raises "unscale_() has already '
        'been called on this optimizer since the last update()"; unscale inside the accumulation condition'
    )
    TRIGGERS = frozenset({".scale(", "unscale_", "Scaler"})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
for step, (x, y) in enumerate(loader):
    scaler.scale(model(x, y) / accum_steps).backward()
    if (step + 1) % accum_steps == 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
""",
    )
    INVALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
for step, (x, y) in enumerate(loader):
    scaler.scale(model(x, y) / accum_steps).backward()
    scaler.unscale_(optimizer)
    if (step + 1) % accum_steps == 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        # An unscale met from several traces (a helper's) is one finding: the engine merges one place's reports.
        for trace in loops.traces(node, self.precision):
            updates = trace.nodes(EventKind.UPDATE)
            for unscale in trace.nodes(EventKind.UNSCALE):
                if not updates or not _unscaled_twice(trace, unscale):
                    continue
                line = self.line_of(updates[0], trace.file_of(updates[0]))
                self.report(unscale, self.MESSAGE.format(line=line), path=trace.file_of(unscale))


def _unscaled_twice(trace: Trace, unscale: Located) -> bool:
    return any(_again_before_update(path, index) for path, index in trace.occurrences(unscale))


def _again_before_update(path: Path, index: int) -> bool:
    """An unguarded `unscale_` in a loop, reached again on this path with no update in between."""
    event = path[index]
    if event.guarded or not event.loops:
        return False
    for earlier in reversed(path[:index]):
        if earlier.kind is EventKind.UPDATE and earlier.scaler == event.scaler:
            return False
        if earlier.kind is EventKind.UNSCALE and (earlier.scaler, earlier.optimizer) == (event.scaler, event.optimizer):
            return True
    return False
