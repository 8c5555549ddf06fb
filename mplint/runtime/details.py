"""What only a report draws: gradient magnitude histograms per parameter and the GradScaler's scale per step.

Installed by a Session made with `details=True` (`mplint verify --report`); the verdicts never
read these. What they cost stays bounded whatever the model's size, and nothing is read back from
the device until recording ends (`settle`); the host waits for the device only when a new layout of
parameters is first copied there (see `_CountTable._layout`):
- gradients are measured in the optimizer step's pre-hook (the step happens; gradients are final
  and unscaled), at the steps `is_measured` picks: each of the first `EVERY_STEP_UNTIL`, then one in
  `EVERY_NTH_STEP`, and the last one `--steps` allows. A step's gradients on one device are binned
  together: packed into chunks of up to `CHUNK_VALUES` values, each chunk keyed by binary exponent
  off the values' bits with a fixed number of kernels (however many parameters it holds) and counted
  into one (parameter x key) table per device. Temporary memory is a few times the chunk's size;
- each `GradScaler.step` keeps its scale and found-inf flags as device tensors, for the first
  `MAX_SCALER_STEPS` steps;
- parameters are named from the modules called before the first optimizer step (a global
  forward pre-hook, removed at that step).
mplint's own torch calls here run with `__torch_function__` handling off, so the recorder does not
see them as the script's.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mplint.runtime.hooks import dtype_name
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

MAX_SCALER_STEPS = 10_000  # a small tensor each: a long run's scale history stays well under 1 MB
# The optimizer steps whose gradients are measured: every one up to EVERY_STEP_UNTIL, then each
# EVERY_NTH_STEP-th, and the last step of `--steps`. Measuring passes over every gradient value about
# six times; a long run pays it on one step in ten.
EVERY_STEP_UNTIL = 10
EVERY_NTH_STEP = 10
# Gradient values binned at once: the temporaries of one chunk (its values, their keys and flat
# indices in the table) take ~20 bytes per value, ~90 MB at this size, whatever the largest parameter.
CHUNK_VALUES = 1 << 22
# The report's bins: 0 zeros, 1 inf/nan, then one per binary exponent.
_ZERO_BIN, _NON_FINITE_BIN, _FIRST_EXPONENT_BIN = 0, 1, 2
_BINS = _FIRST_EXPONENT_BIN + GRADIENT_EXPONENT_MAX - GRADIENT_EXPONENT_MIN + 1
# What a step counts, read off a float32's bits in four elementwise passes: the exponent field plus
# one for a non-zero value. Key 0: zero; 1: float32 subnormal; E + 1 for the biased exponent E of a
# normal value (frexp's exponent is E - 126); 256: inf/nan. Folded into the report's bins at the end.
_KEYS = 257
_NON_FINITE_KEY = 256
_MAX_LAYOUTS = 256  # chunk layouts whose row indices are kept on the device (a step's are reused by the next)


def is_measured(step: int, last_step: int | None) -> bool:
    """Whether the gradients of optimizer step `step` (from 1) are measured."""
    return step <= EVERY_STEP_UNTIL or step % EVERY_NTH_STEP == 0 or step == last_step


# A piece of a chunk: the row its values are counted in, and the values (a flat view of a gradient, or a slice of it).
_Piece = tuple[int, "torch.Tensor"]


class _CountTable:
    """The (parameter x key) gradient counts on one device, summed over the steps measured."""

    def __init__(self, device: torch.device) -> None:
        import torch

        self.device = device
        self.counts = torch.zeros((0, _KEYS), dtype=torch.int64, device=device)
        self._one = torch.ones((), dtype=torch.int64, device=device)
        self._layouts: dict[tuple[tuple[int, int], ...], tuple[torch.Tensor, torch.Tensor]] = {}

    def add_row(self) -> int:
        import torch

        self.counts = torch.cat([self.counts, self.counts.new_zeros((1, _KEYS))])
        return len(self.counts) - 1

    def add(self, gradients: list[tuple[int, torch.Tensor]]) -> None:
        """Count the values of each (row, gradient)."""
        for chunk in _chunks(gradients):
            self._count(chunk)

    def binned(self) -> list[list[int]]:
        """Each row's counts in the report's bins (one transfer)."""
        import torch

        key_bins = torch.tensor(_key_bins(), device=self.device)
        return self.counts.new_zeros((len(self.counts), _BINS)).index_add_(1, key_bins, self.counts).tolist()

    def _count(self, chunk: list[_Piece]) -> None:
        import torch

        values = chunk[0][1] if len(chunk) == 1 else torch.cat([piece for _, piece in chunk])
        keys = _keys(values)
        if len(chunk) == 1:
            index = keys.add_(chunk[0][0] * _KEYS)
        else:
            starts, lengths = self._layout(chunk)
            index = torch.repeat_interleave(starts, lengths, output_size=len(values)).add_(keys)
        self.counts.view(-1).index_add_(0, index, self._one.expand(len(values)))

    def _layout(self, chunk: list[_Piece]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each piece's first flat index in the table and its length, as device tensors (kept: copying them
        to the device each step would wait for it)."""
        import torch

        key = tuple((row, len(piece)) for row, piece in chunk)
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            # int32 like the keys: repeat_interleave and index_add_ take about half the time of int64's.
            starts = torch.tensor([row * _KEYS for row, _ in key], dtype=torch.int32, device=self.device)
            lengths = torch.tensor([length for _, length in key], device=self.device)
            layout = self._layouts[key] = (starts, lengths)
        return layout


def _keys(values: torch.Tensor) -> torch.Tensor:
    """The key of each value (see _KEYS), as int32."""
    import torch

    if values.dtype is torch.float64:
        # Rare for a gradient: frexp, whose exponent is exact for any double, mapped onto float32's keys.
        _, exponent = torch.frexp(values)
        keys = torch.where(torch.isfinite(values), exponent.clamp_(-126, 128).add_(127), _NON_FINITE_KEY)
        return keys.masked_fill_(values == 0, 0)
    magnitude = values.float().view(torch.int32) & 0x7FFFFFFF  # 16-bit values convert exactly
    return (magnitude >> 23).add_(magnitude != 0)


@functools.cache
def _key_bins() -> list[int]:
    """The report's bin of each key: frexp's exponent, clamped to the bins' range."""
    exponents = (min(max(key - 127, GRADIENT_EXPONENT_MIN), GRADIENT_EXPONENT_MAX) for key in range(1, _NON_FINITE_KEY))
    return [
        _ZERO_BIN,
        *(_FIRST_EXPONENT_BIN + exponent - GRADIENT_EXPONENT_MIN for exponent in exponents),
        _NON_FINITE_BIN,
    ]


@dataclass
class _Parameter:
    """One parameter whose gradients are counted: its row in its device's count table."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    table: _CountTable
    row: int
    steps: int = 0


def _chunks(gradients: list[tuple[int, torch.Tensor]]) -> list[list[_Piece]]:
    """Flat views of the gradients, packed in order into chunks of at most CHUNK_VALUES values (a larger
    gradient is sliced)."""
    chunks: list[list[_Piece]] = [[]]
    room = CHUNK_VALUES
    for row, gradient in gradients:
        flat = gradient.reshape(-1)  # a view of a contiguous gradient
        start = 0
        while start < len(flat):
            if room == 0:
                chunks.append([])
                room = CHUNK_VALUES
            piece = flat[start : start + room]
            chunks[-1].append((row, piece))
            start += len(piece)
            room -= len(piece)
    return [chunk for chunk in chunks if chunk]


class Details:
    """The report-only recording of one Session; `install` it, and `settle` it into the log at the end."""

    def __init__(self, log: RunLog, last_step: int | None = None) -> None:
        """`last_step`: the step limit (`--steps`), whose gradients are measured whatever the sampling."""
        self.log = log
        self._last_step = last_step
        # By id(param) and its gradient's device (a model moved to another device is counted there anew),
        # in the order first measured.
        self._parameters: dict[tuple[int, torch.device], _Parameter] = {}
        self._tables: dict[torch.device, _CountTable] = {}
        self._measured_steps: list[int] = []
        self._scaler: list[torch.Tensor] = []  # per GradScaler.step: its scale, then its found-inf flags
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
        self._parameters.clear()
        self._tables.clear()
        self._measured_steps.clear()
        self._scaler.clear()

    def settle(self) -> None:
        """Read the device counters (one transfer per device) into the log's plain data."""
        import torch

        with torch._C.DisableTorchFunction():
            rows = {table: table.binned() for table in self._tables.values()}
            self.log.gradients = tuple(
                _histogram(parameter, rows[parameter.table][parameter.row]) for parameter in self._parameters.values()
            )
            self.log.gradient_steps = tuple(self._measured_steps)
            self.log.scaler_steps = tuple(
                ScalerStep(call, scale, any(found_inf))
                for call, (scale, *found_inf) in enumerate(_read(self._scaler), 1)
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
        step = self.log.steps + 1  # the optimizer step in progress, as the timeline counts them
        if not is_measured(step, self._last_step):
            return
        if not self._measured_steps or self._measured_steps[-1] != step:  # a second optimizer's step is the same step
            self._measured_steps.append(step)
        by_table: dict[_CountTable, list[tuple[int, torch.Tensor]]] = {}
        with torch._C.DisableTorchFunction(), torch.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    grad = param.grad
                    if grad is None or grad.is_sparse:
                        continue
                    parameter = self._parameters.get((id(param), grad.device))
                    if parameter is None:
                        parameter = self._new_parameter(optimizer, param, grad.device)
                    parameter.steps += 1
                    by_table.setdefault(parameter.table, []).append((parameter.row, grad.detach()))
            for table, gradients in by_table.items():
                table.add(gradients)

    def _new_parameter(self, optimizer: Any, param: torch.Tensor, device: torch.device) -> _Parameter:
        name = (self._names or {}).get(id(param)) or f"{type(optimizer).__name__} param {len(self._parameters)}"
        table = self._tables.get(device)
        if table is None:
            table = self._tables[device] = _CountTable(device)
        parameter = _Parameter(name, dtype_name(param.dtype), tuple(param.shape), table, table.add_row())
        self._parameters[(id(param), device)] = parameter
        return parameter

    def _scaler_stepped(self, scaler: Any, optimizer: Any) -> None:
        import torch

        if not scaler.is_enabled() or len(self._scaler) >= MAX_SCALER_STEPS:
            return
        state = scaler._per_optimizer_states.get(id(optimizer), {})
        found_inf = list(state.get("found_inf_per_device", {}).values())
        if scaler._scale is None or not found_inf:
            return
        scale = scaler._scale
        with torch._C.DisableTorchFunction():
            # A copy (the scaler updates its scale in place), on the scale's device: no wait for the device.
            flags = [flag.reshape(1).to(scale.device, torch.float32, non_blocking=True) for flag in found_inf]
            self._scaler.append(torch.cat([scale.reshape(1).float(), *flags]))


def _read(records: list[torch.Tensor]) -> list[list[float]]:
    """The values of small 1-d tensors, with one transfer per device rather than one per tensor."""
    import torch

    by_device: dict[torch.device, list[int]] = {}
    for index, record in enumerate(records):
        by_device.setdefault(record.device, []).append(index)
    values: list[list[float]] = [[] for _ in records]
    for indices in by_device.values():
        flat = torch.cat([records[index] for index in indices]).tolist()
        start = 0
        for index in indices:
            values[index] = flat[start : start + len(records[index])]
            start += len(records[index])
    return values


def _histogram(parameter: _Parameter, counts: list[int]) -> GradientHistogram:
    return GradientHistogram(
        name=parameter.name,
        dtype=parameter.dtype,
        shape=parameter.shape,
        steps=parameter.steps,
        zeros=counts[_ZERO_BIN],
        non_finite=counts[_NON_FINITE_BIN],
        exponents=tuple(counts[_FIRST_EXPONENT_BIN:]),
    )
