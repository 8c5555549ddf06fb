"""Patches and global hooks: autocast regions, optimizers, GradScaler and backward roots.

Everything here is installed on an ExitStack, so closing the stack puts torch back as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from mplint.runtime.observations import AutocastRegion, BackwardPass, OptimizerUse, RunLog, Site
from mplint.runtime.patching import patch
from mplint.runtime.sites import UserCode, is_mplint_file

if TYPE_CHECKING:
    import torch

SCALED_MARK = "_mplint_scaled"  # set on the tensors an enabled GradScaler.scale returned
REGION_KEY = "mplint_region"  # grad_fn.metadata key: the autocast region the node was made in
SITE_KEY = "mplint_site"  # grad_fn.metadata key: the user's line that made the node
FP16_KEY = "mplint_fp16"  # grad_fn.metadata key: the call that made the node returned float16


class StepLimitReached(BaseException):
    """Raised from an optimizer step post-hook; a BaseException so `except Exception` lets it by."""


@functools.cache  # called per torch call by the recorder: a lookup rather than str()
def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def install(
    stack: contextlib.ExitStack,
    log: RunLog,
    user_code: UserCode,
    *,
    steps: int | None,
    emulating: bool,
    on_region_change: Callable[[AutocastRegion | None], None],
    progress: bool,
    around_backward: Callable[[bool], contextlib.AbstractContextManager[None]],
) -> None:
    """Install every hook on `stack`; `around_backward(measure)` wraps each backward pass."""
    _install_autocast(stack, log, user_code, emulating, on_region_change)
    _install_scaler(stack, log, user_code, emulating)
    _install_backward(stack, log, user_code, around_backward)
    _install_optimizer(stack, log, user_code, steps, progress)
    _install_compile(stack, log)
    _install_warning_sites(stack, user_code)


def _install_warning_sites(stack: contextlib.ExitStack, user_code: UserCode) -> None:
    """A warning that torch raises while mplint's modes run the call (a C++ warning is attributed
    to the innermost Python frame, the mode's) is shown at the user's line that made the call."""
    original = warnings._showwarnmsg  # type: ignore[attr-defined]

    def showwarnmsg(message: warnings.WarningMessage) -> None:
        frame = user_code.caller_frame(sys._getframe(1)) if is_mplint_file(message.filename) else None
        if frame is None:
            original(message)
            return
        # Filtered and shown again from the user's line (which then reaches `original`).
        _warn_at(frame, message.message, message.category, source=message.source)

    patch(stack, warnings, "_showwarnmsg", showwarnmsg)


def _install_compile(stack: contextlib.ExitStack, log: RunLog) -> None:
    """`torch.compile` runs the model eagerly: the recorder sees eager ops, and says so."""
    import torch

    def compile_(model: Any = None, *args: Any, **kwargs: Any) -> Any:
        log.compiled += 1
        if model is None:  # `@torch.compile(mode=...)`: a decorator
            return lambda function: function
        return model

    def module_compile(self: Any, *args: Any, **kwargs: Any) -> None:
        log.compiled += 1

    patch(stack, torch, "compile", compile_)
    patch(stack, torch.nn.Module, "compile", module_compile)


@contextlib.contextmanager
def warnings_at_user_line(user_code: UserCode) -> Iterator[None]:
    """Warnings raised inside the block are shown at the user's line that called into it, not at
    mplint's wrapper (a `stacklevel` counted by torch is off by the wrapper's frame)."""
    frame = user_code.caller_frame(sys._getframe(2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        if frame is None:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
            continue
        _warn_at(frame, warning.message, warning.category)


def _warn_at(frame: FrameType, message: Warning | str, category: type[Warning], source: Any = None) -> None:
    """Issue a warning as raised at `frame`'s line (its module's filters and once-registry apply)."""
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
        module_globals=frame.f_globals,
        source=source,
    )


def _install_autocast(
    stack: contextlib.ExitStack,
    log: RunLog,
    user_code: UserCode,
    emulating: bool,
    on_region_change: Callable[[AutocastRegion | None], None],
) -> None:
    import torch

    autocast = torch.amp.autocast_mode.autocast
    original_init, original_enter, original_exit = autocast.__init__, autocast.__enter__, autocast.__exit__

    def init(
        self: Any,
        device_type: str,
        dtype: torch.dtype | None = None,
        enabled: bool = True,
        cache_enabled: bool | None = None,
    ) -> None:
        opened_for = device_type
        if emulating and device_type == "cuda":
            # Run the region as CPU autocast; the emulating kernels give it CUDA's policy.
            device_type, dtype = "cpu", dtype or torch.get_autocast_dtype("cuda")
            log.cuda_used = True
        with warnings_at_user_line(user_code):
            original_init(self, device_type, dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)
        ran_on = log.device if opened_for == "cuda" else opened_for
        # Made even where no user frame calls (a library's region): emulation needs its device.
        self._mplint_region = AutocastRegion(
            user_code.caller(), opened_for, dtype_name(self.fast_dtype), bool(self._enabled), ran_on
        )

    def enter(self: Any) -> Any:
        region = getattr(self, "_mplint_region", None)
        if region is not None:
            # Reported where the region is entered (`with ctx:`), also known by where it was built.
            entered_at = user_code.caller()
            if entered_at is not None and entered_at != region.site:
                region = dataclasses.replace(region, site=entered_at, made_at=region.site)
        log.region_stack.append(region)
        if region is not None and region.site is not None:
            log.regions[region] = None
        on_region_change(log.region)
        return original_enter(self)

    def exit_(self: Any, *exc_info: Any) -> Any:
        try:
            return original_exit(self, *exc_info)
        finally:
            log.region_stack.pop()
            on_region_change(log.region)

    patch(stack, autocast, "__init__", init)
    patch(stack, autocast, "__enter__", enter)
    patch(stack, autocast, "__exit__", exit_)


def _install_scaler(stack: contextlib.ExitStack, log: RunLog, user_code: UserCode, emulating: bool) -> None:
    import torch

    scaler = torch.amp.GradScaler
    original_scale = scaler.scale

    def scale(self: Any, outputs: Any) -> Any:
        undecided = vars(self).pop(_UNDECIDED, None)
        if undecided is not None and not log.cuda_used and self._enabled:
            # Built for CUDA by a script that has used only the CPU since: as plain python here,
            # where CUDA is absent, the scaler is disabled (with python's warning, at its line).
            warnings.warn_explicit(SCALER_DISABLED, UserWarning, *undecided)
            self._enabled = False
        scaled = original_scale(self, outputs)
        if self.is_enabled():
            _mark_scaled(scaled)
        return scaled

    patch(stack, scaler, "scale", scale)
    if emulating:
        original_init = scaler.__init__

        def init(self: Any, device: str = "cuda", *args: Any, **kwargs: Any) -> None:
            with warnings_at_user_line(user_code):
                # A CUDA scaler scales on the emulating CPU. Whether the script is a CUDA script is
                # decided at its first `scale()`: by then it has placed its model, or not.
                original_init(self, "cpu" if device == "cuda" else device, *args, **kwargs)
            frame = user_code.caller_frame(sys._getframe(1))
            if device == "cuda" and not log.cuda_used and frame is not None:
                vars(self)[_UNDECIDED] = (frame.f_code.co_filename, frame.f_lineno)

        patch(stack, scaler, "__init__", init)


_UNDECIDED = "_mplint_undecided"  # on a CUDA scaler built before the script used CUDA: where it was built
# What `torch.amp.GradScaler("cuda")` warns on a machine without CUDA.
SCALER_DISABLED = "torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling."


def _mark_scaled(outputs: Any) -> None:
    import torch

    if isinstance(outputs, torch.Tensor):
        setattr(outputs, SCALED_MARK, True)
    elif isinstance(outputs, (list, tuple)):
        for output in outputs:
            _mark_scaled(output)
    elif isinstance(outputs, dict):
        _mark_scaled(list(outputs.values()))


def _install_backward(
    stack: contextlib.ExitStack,
    log: RunLog,
    user_code: UserCode,
    around_backward: Callable[[bool], contextlib.AbstractContextManager[None]],
) -> None:
    import torch

    original_backward = torch.autograd.backward

    def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        if log.stopped:  # past the step limit (the script caught the stop): record nothing more
            return original_backward(tensors, *args, **kwargs)
        roots = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        site = user_code.caller()
        # Read the graph before backward frees it.
        scaled = any(getattr(root, SCALED_MARK, False) for root in roots)
        regions, fp16 = graph_facts(root.grad_fn for root in roots)
        log.last_backward = (0, 0, 0)
        # A scaled loss needs no underflow measurement: the scale is what keeps gradients in range.
        with around_backward(fp16 and not scaled and site is not None):
            result = original_backward(tensors, *args, **kwargs)
        if site is not None:
            fp16_ops, fp16_values, underflowed = log.last_backward
            log.backward_passes.append(
                BackwardPass(
                    site=site,
                    scaled=scaled,
                    regions=regions,
                    fp16_values=fp16_values,
                    underflowed=underflowed,
                    device=log.device,
                    fp16_ops=fp16_ops,
                )
            )
        return result

    patch(stack, torch.autograd, "backward", backward)


def graph_facts(roots: Iterable[Any]) -> tuple[tuple[AutocastRegion, ...], bool]:
    """The autocast regions recorded on the graph nodes behind `roots`, in the order first met, and
    whether any of those nodes was made by a call that returned float16."""
    found: dict[AutocastRegion, None] = {}
    fp16 = False
    # The nodes themselves, not their ids: torch hands out a Python object per graph node only while
    # one is referenced (torch 2.11 frees it after), so a freed node's id is soon another node's.
    seen: set[Any] = set()
    pending = [node for node in roots if node is not None]
    while pending:
        node = pending.pop()
        if node in seen:
            continue
        seen.add(node)
        metadata = node.metadata
        region = metadata.get(REGION_KEY)
        if region is not None:
            found[region] = None
        fp16 = fp16 or FP16_KEY in metadata
        pending.extend(child for child, _ in node.next_functions if child is not None)
    return tuple(found), fp16


def _dtype_counts(optimizer: torch.optim.Optimizer) -> tuple[tuple[str, int], ...]:
    counts = Counter(dtype_name(param.dtype) for group in optimizer.param_groups for param in group["params"])
    return tuple(sorted(counts.items()))


def _state_dtypes(optimizer: torch.optim.Optimizer) -> tuple[tuple[str, str], ...]:
    import torch

    found = {
        (key, dtype_name(value.dtype))
        for state in optimizer.state.values()
        for key, value in state.items()
        if isinstance(value, torch.Tensor)
    }
    return tuple(sorted(found))


def progress_line(steps_done: int, steps: int | None, elapsed: float, torch_calls: int) -> str:
    """The line `verify` keeps rewriting on a terminal's stderr, one update per optimizer step."""
    done = f"step {steps_done}/{steps or '?'}"
    return f"mplint verify: {done}, {elapsed:.1f} s elapsed, {torch_calls:,} torch calls recorded"


def _install_optimizer(
    stack: contextlib.ExitStack, log: RunLog, user_code: UserCode, steps: int | None, progress: bool
) -> None:
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

    tracked: dict[int, torch.optim.Optimizer] = {}  # keeps the ids in `log.optimizers` unique
    started = time.perf_counter()

    def built_at(optimizer: torch.optim.Optimizer) -> Site | None:
        """The user's line that built (or stepped) `optimizer`: not the `super().__init__` or `step`
        of a project's own optimizer class, but the line that called it."""
        frame = user_code.caller_frame(sys._getframe(2))
        while frame is not None and frame.f_locals.get("self") is optimizer:
            frame = user_code.caller_frame(frame.f_back)
        return None if frame is None else Site(os.path.realpath(frame.f_code.co_filename), frame.f_lineno)

    def track(optimizer: torch.optim.Optimizer, site: Site | None) -> None:
        if site is not None and id(optimizer) not in log.optimizers:
            tracked[id(optimizer)] = optimizer
            log.optimizers[id(optimizer)] = OptimizerUse(
                site, type(optimizer).__name__, log.device, _dtype_counts(optimizer)
            )

    original_add_param_group = torch.optim.Optimizer.add_param_group

    def add_param_group(self: torch.optim.Optimizer, param_group: dict[str, Any]) -> None:
        original_add_param_group(self, param_group)
        use = log.optimizers.get(id(self))
        if use is None:
            track(self, built_at(self))
        else:
            log.optimizers[id(self)] = dataclasses.replace(use, param_dtypes=_dtype_counts(self))

    def before_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if log.stopped:
            # The script caught the stop (a bare `except:`) and stepped again: refuse the step.
            log.steps_refused += 1
            raise StepLimitReached
        # An optimizer built before recording began is known from its first step on.
        track(optimizer, built_at(optimizer))
        if id(optimizer) in log.optimizers:
            log.optimizers[id(optimizer)] = dataclasses.replace(
                log.optimizers[id(optimizer)], step_param_dtypes=_dtype_counts(optimizer)
            )

    def after_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        use = log.optimizers.get(id(optimizer))
        if use is None:
            return
        log.optimizers[id(optimizer)] = dataclasses.replace(
            use, state_dtypes=_state_dtypes(optimizer), steps=use.steps + 1
        )
        log.steps = max(other.steps for other in log.optimizers.values())
        if progress:
            sys.stderr.write("\r" + progress_line(log.steps, steps, time.perf_counter() - started, log.torch_calls))
            sys.stderr.flush()
        stepped = [other.steps for other in log.optimizers.values() if other.steps]
        if steps is not None and min(stepped) >= steps:
            log.stopped = True
            raise StepLimitReached

    patch(stack, torch.optim.Optimizer, "add_param_group", add_param_group)
    stack.callback(register_optimizer_step_pre_hook(before_step).remove)
    stack.callback(register_optimizer_step_post_hook(after_step).remove)
