"""One instrumented stretch of execution: install the recorder, hooks and emulation; undo them all."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from types import TracebackType
from typing import Any

from mplint.errors import MplintError
from mplint.runtime import facade, hooks
from mplint.runtime.children import ChildSettings, following_children
from mplint.runtime.details import Details
from mplint.runtime.emulate import CudaPolicyKernels, CudaRemap
from mplint.runtime.observations import AutocastRegion, RunLog
from mplint.runtime.recorder import Recorder
from mplint.runtime.sites import UserCode

_LABELS = {"cuda": "cuda", "cpu": "cpu", "emulate-cuda": "emulated-cuda"}

_active: list[Session] = []  # the Session recording in this process, if any (a forked child inherits it)


def active_session() -> Session | None:
    return _active[-1] if _active else None


def resolve_device(device: str) -> str:
    """`auto` becomes `cuda` when a GPU is present, else `emulate-cuda`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "emulate-cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise MplintError("--device cuda: no CUDA device is available (use --device emulate-cuda)")
    return device


class Session:
    """Context manager: records into a RunLog while active; leaves torch as it found it."""

    def __init__(
        self,
        device: str,
        user_code: UserCode,
        *,
        steps: int | None = None,
        progress: bool = False,
        children: ChildSettings | None = None,
        details: bool = False,
    ) -> None:
        """`details`: also keep what only a report draws (dtype timeline, gradient histograms, scale per step)."""
        self.device = resolve_device(device)
        self.log = RunLog(device=_LABELS[self.device])
        if details:
            self.log.timeline = Counter()
        self._details = Details(self.log, last_step=steps) if details else None
        self._user_code = user_code
        self._steps = steps
        self._progress = progress
        self._children = children
        self.started_processes: list[Any] = []  # processes the recorded code started
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RunLog:

        emulating = self.device == "emulate-cuda"
        kernels = CudaPolicyKernels() if emulating else None
        try:
            _active.append(self)
            self._stack.callback(_active.remove, self)
            self._stack.callback(_autocast_state_restorer())
            if kernels is not None:
                self._stack.callback(kernels.unregister)
                facade.install(self._stack, self.log)
            if self._details is not None:
                # Settled after the modes below are gone (the stack closes last-in first-out).
                self._stack.callback(self._details.settle)
                self._details.install(self._stack)
            recorder = Recorder(self.log, self._user_code, CudaRemap(self.log) if emulating else None)
            hooks.install(
                self._stack,
                self.log,
                self._user_code,
                steps=self._steps,
                emulating=emulating,
                on_region_change=lambda region: _follow_region(kernels, region),
                progress=self._progress,
                around_backward=recorder.backward_pass,
            )
            self._stack.enter_context(recorder.function_mode())
            if self._children is not None:
                self.started_processes = self._stack.enter_context(following_children(self._children))
        except BaseException:
            self._stack.close()
            raise
        return self.log

    def forget(self) -> None:
        """Drop what was recorded so far (a forked child starts with a copy of its parent's notes)."""
        self.log.forget()
        if self._details is not None:
            self._details.forget()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stack.close()


def _follow_region(kernels: CudaPolicyKernels | None, region: AutocastRegion | None) -> None:
    """CUDA's policy while the innermost region was opened for CUDA; CPU's own when for the CPU."""
    if kernels is None or region is None:
        return
    if region.device_type == "cuda":
        kernels.register()
    elif region.device_type == "cpu":
        kernels.unregister()


def _autocast_state_restorer() -> Callable[[], None]:
    """Snapshot autocast and grad mode; the returned callable restores them (a script may die mid-region)."""
    import torch

    enabled = {device: torch.is_autocast_enabled(device) for device in ("cpu", "cuda")}
    dtypes = {device: torch.get_autocast_dtype(device) for device in ("cpu", "cuda")}
    cache_enabled = torch.is_autocast_cache_enabled()
    grad_enabled = torch.is_grad_enabled()

    def restore() -> None:
        for device in ("cpu", "cuda"):
            torch.set_autocast_enabled(device, enabled[device])
            torch.set_autocast_dtype(device, dtypes[device])
        torch.set_autocast_cache_enabled(cache_enabled)
        torch.set_grad_enabled(grad_enabled)

    return restore
