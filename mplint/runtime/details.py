"""What only a report draws: gradient magnitude histograms per parameter and the GradScaler's scale per step.

Installed by a Session made with `details=True` (`mplint verify --report`); the verdicts never
read these. Memory stays bounded and the device is not synchronised per step:
- at each optimizer step (its pre-hook: gradients are final and unscaled), every gradient is
  binned by binary exponent into one small integer tensor per parameter, on the gradient's
  device, summed over steps (~7 elementwise kernels per parameter and step);
- each `GradScaler.step` keeps its scale and found-inf flags as device tensors, for the first
  `MAX_SCALER_STEPS` steps;
- parameters are named from the modules called before the first optimizer step (a global
  forward pre-hook, removed at that step).
All of it is read once, when recording ends (`settle`). mplint's own torch calls here run with
`__torch_function__` handling off, so the recorder does not see them as the script's.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mplint.runtime.observations import (
    GRADIENT_EXPONENT_MAX,
    GRADIENT_EXPONENT_MIN,
    GradientHistogram,
    RunLog,
    ScalerStep,
)
from mplint.runtime.patching import patch

if TYPE_CHECKING:
    import torch

MAX_SCALER_STEPS = 10_000  # two small tensors each: a long run's scale history stays well under 1 MB
# Bin 0: zeros, bin 1: inf/nan, then one bin per binary exponent.
_ZERO_BIN, _NON_FINITE_BIN, _FIRST_EXPONENT_BIN = 0, 1, 2
_BINS = _FIRST_EXPONENT_BIN + GRADIENT_EXPONENT_MAX - GRADIENT_EXPONENT_MIN + 1


class _ParameterGradients:
    """The running histogram of one parameter's gradients."""

    def __init__(self, name: str, param: torch.Tensor) -> None:
        import torch

        self.name = name
        self.dtype = str(param.dtype).removeprefix("torch.")
        self.shape = tuple(param.shape)
        self.counts = torch.zeros(_BINS, dtype=torch.int64, device=param.device)
        self.steps = 0

    def add(self, grad: torch.Tensor) -> None:
        import torch

        magnitude = grad.detach().abs().flatten().float()
        _, exponent = torch.frexp(magnitude)
        bins = exponent.clamp_(GRADIENT_EXPONENT_MIN, GRADIENT_EXPONENT_MAX).add_(
            _FIRST_EXPONENT_BIN - GRADIENT_EXPONENT_MIN
        )
        bins = torch.where(torch.isfinite(magnitude), bins, _NON_FINITE_BIN)
        bins = torch.where(magnitude == 0, _ZERO_BIN, bins)
        self.counts.add_(torch.bincount(bins, minlength=_BINS))
        self.steps += 1

    def histogram(self) -> GradientHistogram:
        counts = self.counts.tolist()
        return GradientHistogram(
            name=self.name,
            dtype=self.dtype,
            shape=self.shape,
            steps=self.steps,
            zeros=counts[_ZERO_BIN],
            non_finite=counts[_NON_FINITE_BIN],
            exponents=tuple(counts[_FIRST_EXPONENT_BIN:]),
        )


class Details:
    """The report-only recording of one Session; `install` it, and `settle` it into the log at the end."""

    def __init__(self, log: RunLog) -> None:
        self.log = log
        self._gradients: dict[int, _ParameterGradients] = {}  # by id(param), in the order first stepped
        self._scaler: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
        self._modules: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._names: dict[int, str] | None = None  # id(param) -> name, fixed at the first optimizer step
        self._stop_naming: Callable[[], None] = lambda: None

    def install(self, stack: contextlib.ExitStack) -> None:
        import torch
        from torch.nn.modules.module import register_module_forward_pre_hook
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        naming = register_module_forward_pre_hook(self._module_called)
        stack.callback(naming.remove)
        self._stop_naming = naming.remove
        stack.callback(register_optimizer_step_pre_hook(self._before_step).remove)
        original_step = torch.amp.GradScaler.step

        def step(scaler: Any, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original_step(scaler, optimizer, *args, **kwargs)
            finally:  # also when the step limit is raised from inside the optimizer's step
                self._scaler_stepped(scaler, optimizer)

        patch(stack, torch.amp.GradScaler, "step", step)

    def forget(self) -> None:
        """A forked child starts with a copy of its parent's notes: drop them."""
        self._gradients.clear()
        self._scaler.clear()

    def settle(self) -> None:
        """Read the device counters (one sync) into the log's plain data."""
        import torch

        with torch._C.DisableTorchFunction():
            self.log.gradients = tuple(parameter.histogram() for parameter in self._gradients.values())
            self.log.scaler_steps = tuple(
                ScalerStep(call, float(scale.item()), any(bool(flag.item()) for flag in found_inf))
                for call, (scale, found_inf) in enumerate(self._scaler, 1)
            )

    def _module_called(self, module: Any, inputs: Any) -> None:
        self._modules[id(module)] = module

    def _param_names(self) -> dict[int, str]:
        """The longest dotted name each parameter has in the modules called so far (the outermost module's)."""
        names: dict[int, str] = {}
        for module in list(self._modules.values()):
            for name, param in module.named_parameters():
                if len(name) > len(names.get(id(param), "")):
                    names[id(param)] = name
        return names

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        import torch

        if self.log.stopped:
            return
        if self._names is None:
            self._names = self._param_names()
            self._stop_naming()
            self._modules.clear()
        with torch._C.DisableTorchFunction(), torch.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if param.grad is None or param.grad.is_sparse:
                        continue
                    parameter = self._gradients.get(id(param))
                    if parameter is None:
                        name = self._names.get(id(param)) or f"{type(optimizer).__name__} param {len(self._gradients)}"
                        parameter = self._gradients[id(param)] = _ParameterGradients(name, param)
                    parameter.add(param.grad)

    def _scaler_stepped(self, scaler: Any, optimizer: Any) -> None:
        import torch

        if not scaler.is_enabled() or len(self._scaler) >= MAX_SCALER_STEPS:
            return
        state = scaler._per_optimizer_states.get(id(optimizer), {})
        found_inf = list(state.get("found_inf_per_device", {}).values())
        if scaler._scale is None or not found_inf:
            return
        with torch._C.DisableTorchFunction():
            self._scaler.append((scaler._scale.detach().clone(), [flag.detach().clone() for flag in found_inf]))
