from __future__ import annotations

import libcst as cst

from mplint.analysis import paths as loops
from mplint.analysis.events import Event, EventKind, Path
from mplint.analysis.paths import Trace
from mplint.rule import Rule
from mplint.tree import Located


class ClipBeforeUnscale(Rule):
    """Gradients are clipped (or their norm read) while still multiplied by the GradScaler's scale.

    ## What it does
    Follows every path through a training step (a loop body, or a function, with gradient
    accumulation conditions, early `continue`s and helper functions) and finds
    `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_` (or a wrapped model's
    `clip_grad_norm_`), or a computation on `.grad` (`p.grad.norm()`, `p.grad.data.clamp_(...)`),
    that runs after `scaler.scale(loss).backward()` with no `scaler.unscale_(optimizer)` in between,
    on every path that reaches it. The scaler is the one the precision model tracks from its
    `GradScaler(...)` construction, or a receiver that scales a loss and also steps, updates or
    unscales: a structural fact, not its name. A commented-out `unscale_` is no call and does not count;
    the end of NVIDIA apex's `with amp.scale_loss(loss, optimizer) as scaled_loss:` block unscales
    (a clip inside the block does not see unscaled gradients).

    ## Why is this bad
    After `scaler.scale(loss).backward()` every gradient is multiplied by the current scale
    (65536 at first). `clip_grad_norm_(params, 1.0)` then compares a norm tens of thousands of
    times too large with the threshold and shrinks every update to almost nothing (and a logged
    grad norm is meaningless); `clip_grad_value_` clips the scaled values, which is a different,
    far smaller threshold. PyTorch's AMP examples ("Working with Unscaled Gradients"): call
    `scaler.unscale_(optimizer)` first; `scaler.step` then knows they are unscaled and does not
    unscale twice.

    ## Example
    ```python
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
    ```

    ## Fix
    ```python
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
    scaler.step(optimizer)
    scaler.update()
    ```
    With gradient accumulation, unscale inside the accumulation condition, right before clipping.
    """

    CODE = "MP101"
    NAME = "clip-before-unscale"
    MESSAGE = (
        "{what} sees gradients still multiplied by the loss scale (scaled backward at line {line}, no "
        "`scaler.unscale_(optimizer)` in between): call `scaler.unscale_(optimizer)` first"
    )
    TRIGGERS = frozenset({".scale(", "unscale_", "Scaler", "scale_loss("})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
for x, y in loader:
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(x, y)
    scaler.scale(loss).backward()
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
for x, y in loader:
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(x, y)
    scaler.scale(loss).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    scaler.step(optimizer)
    scaler.update()
""",
    )

    def visit_Module(self, node: cst.Module) -> None:
        # A clip in a helper is met in each caller's trace: one finding at the clip, the other
        # callers' backwards its related notes (the engine merges reports of one place).
        for trace in loops.traces(node, self.precision):
            for clip in trace.nodes(EventKind.CLIP):
                backward = _scaled_backward_on_every_path(trace, clip)
                if backward is not None:
                    line = self.line_of(backward.node, backward.file)
                    message = self.MESSAGE.format(what=_describe(clip), line=line)
                    self.report(clip, message, path=trace.file_of(clip))


def _scaled_backward_on_every_path(trace: Trace, clip: Located) -> Event | None:
    """The scaled backward whose gradients `clip` reads unscaled, when every path to it has one."""
    found = None
    for path, index in trace.occurrences(clip):
        backward = _unscaled_since(path, index)
        if backward is None:
            return None
        found = found or backward
    return found


def _unscaled_since(path: Path, index: int) -> Event | None:
    backward = loops.last_backward(path, index)
    if backward is None or path[backward].kind is not EventKind.SCALED_BACKWARD:
        return None
    return None if loops.unscaled_between(path, backward, index) else path[backward]


def _describe(clip: Located) -> str:
    func = clip.func if isinstance(clip, cst.Call) else None
    name = func.attr.value if isinstance(func, cst.Attribute) else func.value if isinstance(func, cst.Name) else ""
    return f"`{name}`" if "clip_grad" in name else "this computation on `.grad`"
