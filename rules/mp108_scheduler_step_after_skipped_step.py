from __future__ import annotations

import libcst as cst

from mplint.analysis import paths as loops
from mplint.analysis.events import Event, EventKind, Path
from mplint.analysis.paths import Trace
from mplint.analysis.values import Precision
from mplint.rule import Rule


class SchedulerStepAfterSkippedStep(Rule):
    """A learning-rate scheduler steps after `scaler.step(optimizer)` even when the scaler skipped the step.

    ## What it does
    Follows every path through an iteration of a training loop with float16 loss scaling and finds
    a learning-rate scheduler (`torch.optim.lr_scheduler.*`, transformers' `get_*_schedule*`,
    diffusers' `get_scheduler`) stepped after `scaler.step(optimizer)` and before its next step (later
    in the iteration, or first thing in the next one), with nothing checking whether the scaler
    skipped the optimizer step. Helpers the loop calls are
    followed (a `train_step()` that calls `scaler.step`, then `scheduler.step()` in the loop).

    Not reported: a scheduler step under a condition that reads the skip (the pattern from the
    PyTorch forums: `scale = scaler.get_scale(); scaler.update(); if scale <= scaler.get_scale():
    scheduler.step()`, or through a flag bound from it: `skip_lr_sched = scale >
    scaler.get_scale()`; accelerate's `optimizer_step_was_skipped`); a scheduler stepped once per
    epoch after the batch loop (a skipped step is one of an epoch's hundreds, and the epoch did
    happen); a scaler built with `enabled=False` (or disabled in the default configuration);
    bfloat16 losses (no overflow to skip on: MP106 reports the scaler); `ReduceLROnPlateau`
    (driven by a metric, not a step count); the scheduler of another optimizer than the one the
    scaler stepped; schedulers a framework steps (no `scaler.step` is
    written in the linted code then).

    ## Why is this bad
    With float16, `scaler.step(optimizer)` does not call `optimizer.step()` when the unscaled
    gradients hold inf or NaN (torch 2.13, torch/amp/grad_scaler.py: `if not
    sum(v.item() for v in optimizer_state["found_inf_per_device"].values()): retval =
    optimizer.step()`), which happens on the first iterations while the scale (65536) searches
    down, and again whenever it has grown too far. The scheduler steps anyway: the learning rate
    runs ahead of the weights (warmup ends early, a one-cycle schedule peaks before the optimizer
    has taken its steps), and when the very first step is skipped torch warns "Detected call of
    `lr_scheduler.step()` before `optimizer.step()`", a warning users then learn to ignore. The
    trap is reported in pytorch/pytorch#67590 (`scaler.step` gives no sign that it skipped) and
    Lightning-AI/pytorch-lightning#18828 (the scheduler still stepped when the step was skipped).

    ## Example
    ```python
    for x, y in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
    ```

    ## Fix
    Step the scheduler only when the optimizer stepped: the scale drops exactly when a step is skipped.
    ```python
        scale_before = scaler.get_scale()
        scaler.step(optimizer)
        scaler.update()
        if scale_before <= scaler.get_scale():
            scheduler.step()
    ```
    """

    CODE = "MP108"
    NAME = "scheduler-step-after-skipped-step"
    MESSAGE = (
        "learning-rate scheduler stepped after `scaler.step(...)` (line {line}) whether or not the scaler skipped "
        "the optimizer step (it does on inf/NaN gradients, at the start and whenever the scale grows too far): "
        "the schedule runs ahead of the weights; step it only if the scale did not drop "
        "(`if scale_before <= scaler.get_scale(): scheduler.step()`)"
    )
    TRIGGERS = frozenset({".scale(", "unscale_", "Scaler"})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=1000)
for x, y in loader:
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(x, y)
    scaler.scale(loss).backward()
    scale_before = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    if scale_before <= scaler.get_scale():
        scheduler.step()
""",
    )
    INVALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=1000)
for x, y in loader:
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(x, y)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        for trace in loops.traces(node, self.precision):
            for path in trace.paths:
                for index, event in enumerate(path):
                    if event.kind is EventKind.SCALER_STEP and self._may_skip(path, index):
                        for scheduler in _unchecked_scheduler_steps(path, index):
                            self._report(trace, scheduler, event)

    def _report(self, trace: Trace, scheduler: Event, step: Event) -> None:
        line = self.line_of(step.node, trace.file_of(step.node))
        self.report(scheduler.node, self.MESSAGE.format(line=line), path=trace.file_of(scheduler.node))

    def _may_skip(self, path: Path, index: int) -> bool:
        """A scaler that is on, stepping a loss that may overflow (not one computed in bfloat16)."""
        scaler = path[index].scaler
        if isinstance(scaler, cst.Call) and self.precision.scaler_enabled(scaler) is False:
            return False
        backward = next((event for event in reversed(path[:index]) if event.kind is EventKind.SCALED_BACKWARD), None)
        if backward is None or not isinstance(backward.node, cst.Call):
            return True
        regions = [fact.receiver.region for fact in self.precision.calls(backward.node)]
        return not regions or not all(
            region is not None and region.precision is Precision.BF16 and region.otherwise is None for region in regions
        )


def _unchecked_scheduler_steps(path: Path, index: int) -> list[Event]:
    """Scheduler steps after the scaler step at `index` (later in the iteration, or at the top of the
    next one), inside its innermost loop (not a per-epoch step after that loop), that no condition
    on the skip guards."""
    step = path[index]
    innermost = step.loops[-1] if step.loops else None
    return [
        event
        for event in path[index + 1 :]
        if event.kind is EventKind.SCHEDULER_STEP
        and not event.checks_skip
        and (innermost is None or innermost in event.loops)
        and not _schedules_another_optimizer(event, step)
    ]


def _schedules_another_optimizer(scheduler: Event, step: Event) -> bool:
    """Both optimizers tracked to their constructions, and different ones."""
    optimizers = (scheduler.optimizer, step.optimizer)
    return all(isinstance(optimizer, cst.Call) for optimizer in optimizers) and optimizers[0] is not optimizers[1]
