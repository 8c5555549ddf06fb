"""What a run showed, keyed by the user's `file:line`: plain data (no torch), merged across ranks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from mplint.config import display_path

HALF_DTYPES = frozenset({"float16", "bfloat16"})
_Key = TypeVar("_Key", bound=Hashable)


@dataclass(frozen=True, order=True)
class Site:
    path: str  # real, absolute path
    line: int

    def describe(self) -> str:
        return f"{display_path(self.path)}:{self.line}"


@dataclass(frozen=True)
class OpCall:
    """One kind of aten call at one place: the counts of identical calls are kept beside it."""

    site: Site
    op: str  # e.g. "aten._log_softmax"
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    backward: bool  # a backward op, attributed to the forward site that created its node
    device: str  # "cuda", "cpu", "emulated-cuda"
    # Ran inside an autocast region opened for CUDA on a run without CUDA (`--device cpu`): the
    # region was disabled, so the dtypes are not those the script gets on its GPU.
    in_cuda_region_on_cpu: bool = False


@dataclass(frozen=True)
class AutocastRegion:
    site: Site | None  # where `torch.autocast(...)` was called; None outside the user's files
    device_type: str  # as the script opened it
    dtype: str
    enabled: bool
    device: str  # where its ops ran: "cuda", "cpu", "emulated-cuda"
    made_at: Site | None = None  # where the autocast object was built, when entered elsewhere (`with ctx:`)


def _half_count(dtype_counts: tuple[tuple[str, int], ...]) -> int:
    return sum(count for dtype, count in dtype_counts if dtype in HALF_DTYPES)


@dataclass(frozen=True)
class OptimizerUse:
    site: Site  # the optimizer's constructor call
    kind: str  # e.g. "AdamW"
    device: str
    param_dtypes: tuple[tuple[str, int], ...]  # at construction: dtype -> number of params
    step_param_dtypes: tuple[tuple[str, int], ...] = ()  # at its last step
    state_dtypes: tuple[tuple[str, str], ...] = ()  # e.g. ("exp_avg", "float16") after a step
    steps: int = 0

    @property
    def half_params(self) -> int:
        """Half params when built or at the last step (a model may be `.half()`-ed in between)."""
        return max(_half_count(self.param_dtypes), _half_count(self.step_param_dtypes))

    @property
    def params(self) -> int:
        return sum(count for _, count in self.param_dtypes)


@dataclass(frozen=True)
class BackwardPass:
    site: Site  # the `backward()` call
    scaled: bool  # its root came out of an enabled GradScaler.scale
    regions: tuple[AutocastRegion, ...]  # autocast regions whose ops feed the root
    fp16_values: int  # fp16 values produced by the sampled backward ops (re-run in fp32)
    underflowed: int  # of those, subnormal or flushed to zero where fp32 would not be
    device: str
    fp16_ops: int = 0  # backward ops with fp16 outputs (counted in unscaled passes only)


@dataclass(frozen=True, order=True)
class LineOp:
    """One torch call kind at one user line, in one optimizer step: the timeline's unit (counted beside it)."""

    step: int  # the optimizer step in progress, from 1
    site: Site
    op: str  # the torch function as called, e.g. "linear", "Tensor.__add__"
    dtype: str  # of its first tensor result


# Gradient magnitudes are binned by their binary exponent: bin `e` holds 2**(e-1) <= |g| < 2**e
# (`torch.frexp`). Exponents outside [GRADIENT_EXPONENT_MIN, GRADIENT_EXPONENT_MAX] go to the end bins.
GRADIENT_EXPONENT_MIN, GRADIENT_EXPONENT_MAX = -40, 20


@dataclass(frozen=True)
class GradientHistogram:
    """One parameter's gradients at the optimizer steps measured, summed over those steps."""

    name: str  # its name in the model (`blocks.0.attn.weight`), else `param N` in its optimizer
    dtype: str  # the gradient's dtype
    shape: tuple[int, ...]
    steps: int  # optimizer steps whose gradients were counted
    zeros: int  # values exactly zero
    non_finite: int  # inf or nan
    # Non-zero finite values per exponent bin, GRADIENT_EXPONENT_MIN..GRADIENT_EXPONENT_MAX.
    exponents: tuple[int, ...]

    @property
    def values(self) -> int:
        return self.zeros + self.non_finite + sum(self.exponents)


@dataclass(frozen=True)
class ScalerStep:
    """A `GradScaler.step` call: the scale the gradients were multiplied by, and whether it skipped the step."""

    call: int  # 1, 2, ... in the order the steps ran
    scale: float
    skipped: bool  # inf/nan gradients were found: the optimizer did not step (and the scale backs off)


@dataclass(frozen=True)
class Observations:
    op_calls: tuple[tuple[OpCall, int], ...] = ()
    regions: tuple[AutocastRegion, ...] = ()
    optimizers: tuple[OptimizerUse, ...] = ()
    backward_passes: tuple[BackwardPass, ...] = ()
    steps: int = 0
    ranks: int = 1
    processes: int = 1  # processes that recorded something (the script's, its workers', every rank's)
    cuda_used: bool = False  # under emulation: the script placed something on CUDA or opened a CUDA region
    compiled: int = 0  # calls of torch.compile / Module.compile, run eagerly
    steps_refused: int = 0  # optimizer steps the script tried after catching the stop
    # Kept only when a report asks for them (`verify --report`): see `details.py`.
    timeline: tuple[tuple[LineOp, int], ...] = ()
    gradients: tuple[GradientHistogram, ...] = ()
    gradient_steps: tuple[int, ...] = ()  # the optimizer steps whose gradients `gradients` counts
    scaler_steps: tuple[ScalerStep, ...] = ()

    @property
    def recorded(self) -> bool:
        """Whether anything ran in the user's code: an op, an optimizer, a backward pass."""
        return bool(self.op_calls or self.optimizers or self.backward_passes)

    def calls_at(self, first_line: int, last_line: int, path: str, ops: frozenset[str]) -> list[tuple[OpCall, int]]:
        """Forward calls of `ops` recorded on lines first_line..last_line of `path`."""
        return [
            (call, count)
            for call, count in self.op_calls
            if call.op in ops
            and not call.backward
            and call.site.path == path
            and first_line <= call.site.line <= last_line
        ]


def merge(parts: list[Observations]) -> Observations:
    """One report for a distributed run (one part per rank): counts add up, identical records collapse."""
    return _combine(parts, ranks=len(parts), processes=sum(part.processes for part in parts if part.recorded))


def absorb(parent: Observations, children: list[Observations]) -> Observations:
    """The script's own observations with those of the worker processes it started."""
    parts = [parent, *children]
    return _combine(parts, ranks=parent.ranks, processes=sum(part.processes for part in parts if part.recorded))


def _summed(items: Iterable[tuple[_Key, int]]) -> tuple[tuple[_Key, int], ...]:
    counts: Counter[_Key] = Counter()
    for key, count in items:
        counts[key] += count
    return tuple(counts.items())


def _combine(parts: list[Observations], *, ranks: int, processes: int) -> Observations:
    return Observations(
        op_calls=_summed(item for part in parts for item in part.op_calls),
        regions=tuple(dict.fromkeys(region for part in parts for region in part.regions)),
        optimizers=tuple(dict.fromkeys(use for part in parts for use in part.optimizers)),
        # Events, not facts: two ranks' identical passes are two passes.
        backward_passes=tuple(backward for part in parts for backward in part.backward_passes),
        steps=max((part.steps for part in parts), default=0),
        ranks=ranks,
        processes=max(processes, 1),
        cuda_used=any(part.cuda_used for part in parts),
        compiled=max((part.compiled for part in parts), default=0),
        steps_refused=sum(part.steps_refused for part in parts),
        timeline=_summed(item for part in parts for item in part.timeline),
        # Ranks' gradients are all-reduced and their scalers agree: the first process that kept them speaks.
        gradients=next((part.gradients for part in parts if part.gradients), ()),
        gradient_steps=next((part.gradient_steps for part in parts if part.gradients), ()),
        scaler_steps=next((part.scaler_steps for part in parts if part.scaler_steps), ()),
    )


@dataclass
class RunLog:
    """The mutable notebook the recorder and hooks write into during a run."""

    device: str
    op_calls: Counter[OpCall] = field(default_factory=Counter)
    regions: dict[AutocastRegion, None] = field(default_factory=dict)
    optimizers: dict[int, OptimizerUse] = field(default_factory=dict)
    backward_passes: list[BackwardPass] = field(default_factory=list)
    # (fp16 backward ops, sampled fp16 values, of those underflowed) of the last measured backward pass
    last_backward: tuple[int, int, int] = (0, 0, 0)
    torch_calls: int = 0  # torch calls made while recording (the user's or a library's)
    steps: int = 0
    # Under emulation: whether the script placed anything on CUDA or opened a CUDA region yet (a
    # script configured for the CPU never does, and must run as plain python runs it here).
    cuda_used: bool = False
    compiled: int = 0  # torch.compile calls, each run eagerly
    stopped: bool = False  # the step limit was reached: nothing more is recorded
    steps_refused: int = 0
    # Kept when a report asks for it: a LineOp's fields as a plain tuple, (step, site, op, dtype), which the
    # recorder builds and hashes per torch call several times faster than the dataclass.
    timeline: Counter[tuple[int, Site, str, str]] | None = None
    gradients: tuple[GradientHistogram, ...] = ()  # written once, when recording ends
    gradient_steps: tuple[int, ...] = ()
    scaler_steps: tuple[ScalerStep, ...] = ()
    # The autocast regions entered and not yet left, innermost last; None for one whose autocast
    # object was made before the hooks were installed (nothing is known about it).
    region_stack: list[AutocastRegion | None] = field(default_factory=list)

    def forget(self) -> None:
        """Drop what was recorded so far (a forked child starts with a copy of its parent's notes)."""
        self.op_calls.clear()
        self.regions.clear()
        self.optimizers.clear()
        self.backward_passes.clear()
        if self.timeline is not None:
            self.timeline.clear()
        self.steps = self.compiled = self.torch_calls = self.steps_refused = 0
        self.stopped = False

    @property
    def region(self) -> AutocastRegion | None:
        return self.region_stack[-1] if self.region_stack else None

    def freeze(self) -> Observations:
        return Observations(
            op_calls=tuple(self.op_calls.items()),
            regions=tuple(self.regions),
            optimizers=tuple(self.optimizers.values()),
            backward_passes=tuple(self.backward_passes),
            steps=self.steps,
            cuda_used=self.cuda_used,
            compiled=self.compiled,
            steps_refused=self.steps_refused,
            timeline=tuple((LineOp(*key), count) for key, count in (self.timeline or {}).items()),
            gradients=self.gradients,
            gradient_steps=self.gradient_steps,
            scaler_steps=self.scaler_steps,
        )
