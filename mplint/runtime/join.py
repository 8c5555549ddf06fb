"""Verdicts: each static MP001–MP003 finding meets what the run showed at its lines.

A static finding becomes `confirmed`, `refuted` or `not-reached`, with evidence. What the run
showed that no static finding covers becomes a runtime-only finding (MP901–MP903).
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mplint.config import display_path
from mplint.findings import Finding
from mplint.runtime.codes import MP901, MP902, MP903, RuntimeCode
from mplint.runtime.observations import (
    HALF_DTYPES,
    AutocastRegion,
    BackwardPass,
    Observations,
    OpCall,
    OptimizerUse,
    Site,
)
from mplint.runtime.recorder import REDUCED_LOSS, SAMPLE_EVERY

STATIC_CODES = ("MP001", "MP002", "MP003")
LOG_SPACE_OPS = frozenset({"aten._log_softmax", "aten.logsumexp"})

CONFIRMED, REFUTED, NOT_REACHED, RUNTIME_ONLY = "confirmed", "refuted", "not-reached", "runtime-only"
# The run could not check the claim where it ran: a region opened for CUDA, on a CPU run.
NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class Span:
    """The lines of one static finding, in the real path the recorder keys sites by."""

    path: str
    first: int
    last: int

    @classmethod
    def of(cls, finding: Finding) -> Span:
        return cls(os.path.realpath(finding.path), finding.line, max(finding.line, finding.end_line))

    def holds(self, site: Site | None) -> bool:
        return site is not None and site.path == self.path and self.first <= site.line <= self.last


def static_findings(files: Iterable[str], *, every_code: bool = False) -> tuple[Finding, ...]:
    """What the static pass says about `files` (the script and the project files it imported):
    MP001-MP003, or with `every_code` all that `mplint FILES` reports (its configuration applies)."""
    from mplint.api import lint_paths

    paths = [display_path(path) for path in files]
    if not paths:
        return ()
    return lint_paths(paths, select=None if every_code else list(STATIC_CODES)).findings


def split_static(findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(the findings the run can judge, the static-only ones)."""
    findings = list(findings)
    return (
        [finding for finding in findings if finding.code in STATIC_CODES],
        [finding for finding in findings if finding.code not in STATIC_CODES],
    )


def join(static: Iterable[Finding], observations: Observations) -> tuple[Finding, ...]:
    """Static findings with verdicts, then the runtime-only findings, in report order."""
    static = [finding for finding in static if finding.code in STATIC_CODES]
    judged = [_judge(finding, observations) for finding in static]
    spans = {code: [Span.of(finding) for finding in static if finding.code == code] for code in STATIC_CODES}
    runtime_only = [
        *_half_log_softmax(observations, spans["MP001"]),
        *_unscaled_backward(observations, spans["MP002"]),
        *_half_optimizers(observations, spans["MP003"]),
    ]
    return tuple(sorted([*judged, *runtime_only], key=Finding.sort_key))


def has_problems(findings: Sequence[Finding]) -> bool:
    """Whether the exit code is 1: something confirmed, or found only at run time."""
    return any(finding.verdict in (CONFIRMED, RUNTIME_ONLY) for finding in findings)


def _judge(finding: Finding, observations: Observations) -> Finding:
    span = Span.of(finding)
    if finding.code == "MP001":
        verdict, evidence, device = _judge_log_softmax(span, observations)
    elif finding.code == "MP002":
        verdict, evidence, device = _judge_autocast(span, observations)
    else:
        verdict, evidence, device = _judge_optimizer(span, observations)
    return dataclasses.replace(finding, verdict=verdict, evidence=evidence, device=device)


Judgement = tuple[str, tuple[str, ...], str | None]


def _op_evidence(calls: list[tuple[OpCall, int]]) -> tuple[str, ...]:
    counts: Counter[tuple[str, str, Site]] = Counter()
    for call, count in calls:
        counts[(call.op, "/".join(call.outputs[:1]), call.site)] += count
    return tuple(
        f"{op} ran on {dtype} at {site.describe()}, {count} call{'s' if count != 1 else ''}"
        for (op, dtype, site), count in sorted(counts.items(), key=lambda item: (item[0][2], item[0][0]))
    )


def _runs_half(call: OpCall) -> bool:
    return bool(call.outputs) and call.outputs[0] in HALF_DTYPES


def _judge_log_softmax(span: Span, observations: Observations) -> Judgement:
    calls = observations.calls_at(span.first, span.last, span.path, LOG_SPACE_OPS)
    if not calls:
        return NOT_REACHED, (f"no log-softmax or logsumexp ran at {_describe(span)}",), None
    half = [(call, count) for call, count in calls if _runs_half(call)]
    if not half and any(call.in_cuda_region_on_cpu for call, _ in calls):
        return NOT_APPLICABLE, (_not_checkable(f"the log-softmax at {_describe(span)}"),), calls[0][0].device
    deciding = half or calls
    return (CONFIRMED if half else REFUTED), _op_evidence(deciding), deciding[0][0].device


def _not_checkable(what: str) -> str:
    return (
        f"not checkable here (CUDA region on a CPU run): {what} ran inside an autocast region opened for CUDA, "
        "which a run without CUDA disables; run on a GPU or with --device emulate-cuda"
    )


def _cuda_region_on_cpu(region: AutocastRegion) -> bool:
    return region.device_type == "cuda" and region.device == "cpu"


def _in(span: Span, region: AutocastRegion) -> bool:
    """Whether the region was entered, or built, on the finding's lines."""
    return span.holds(region.site) or span.holds(region.made_at)


def _regions_at(span: Span, passes: Iterable[BackwardPass]) -> list[tuple[BackwardPass, list[AutocastRegion]]]:
    found = []
    for backward in passes:
        regions = [region for region in backward.regions if _in(span, region)]
        if regions:
            found.append((backward, regions))
    return found


def _is_fp16(region: AutocastRegion) -> bool:
    return region.enabled and region.dtype == "float16"


def _judge_autocast(span: Span, observations: Observations) -> Judgement:
    regions = [region for region in observations.regions if _in(span, region)]
    if not regions:
        return NOT_REACHED, (f"the autocast region at {_describe(span)} never ran",), None
    device = regions[0].device
    if all(map(_cuda_region_on_cpu, regions)):
        return NOT_APPLICABLE, (_not_checkable(f"the code under the autocast at {_describe(span)}"),), device
    passes = _regions_at(span, observations.backward_passes)
    if not passes:
        return NOT_REACHED, (f"no backward pass went through the autocast region at {_describe(span)}",), device
    unscaled = [backward for backward, used in passes if not backward.scaled and any(map(_is_fp16, used))]
    if unscaled:
        return CONFIRMED, _backward_evidence(unscaled, f"float16 autocast at {_describe(span)}"), device
    if not any(_is_fp16(region) for _, used in passes for region in used):
        dtypes = sorted({region.dtype if region.enabled else "disabled" for region in regions})
        return (
            REFUTED,
            (f"the autocast region at {_describe(span)} ran as {', '.join(dtypes)}: no float16 gradients",),
            device,
        )
    sites = sorted({backward.site for backward, _ in passes})
    where = ", ".join(site.describe() for site in sites)
    return REFUTED, (f"every backward through it ({where}) started from an enabled GradScaler.scale",), device


def _backward_evidence(passes: list[BackwardPass], cause: str) -> tuple[str, ...]:
    counts = Counter(backward.site for backward in passes)
    fp16 = sum(backward.fp16_values for backward in passes)
    underflowed = sum(backward.underflowed for backward in passes)
    evidence = [
        f"backward at {site.describe()} ran after {cause} without an enabled GradScaler, "
        f"{count} pass{'es' if count != 1 else ''}"
        for site, count in sorted(counts.items())
    ]
    if fp16:
        ops = sum(backward.fp16_ops for backward in passes)
        evidence.append(
            f"measured: {underflowed / fp16:.2%} of fp16 gradient values ({underflowed:,} of {fp16:,}) "
            f"were subnormal or flushed to zero where fp32 was not (a sample: about 1 in {SAMPLE_EVERY} of "
            f"{ops:,} fp16 backward ops re-run in fp32)"
        )
    return tuple(evidence)


def _optimizer_evidence(use: OptimizerUse) -> tuple[str, ...]:
    dtypes = ", ".join(f"{count} {dtype}" for dtype, count in use.param_dtypes)
    evidence = [f"{use.kind} at {use.site.describe()} was built over {use.params} params ({dtypes})"]
    if use.step_param_dtypes and use.step_param_dtypes != use.param_dtypes:
        at_step = ", ".join(f"{count} {dtype}" for dtype, count in use.step_param_dtypes)
        evidence.append(f"at its last step they were {at_step}")
    if use.state_dtypes:
        state = ", ".join(f"{key} {dtype}" for key, dtype in use.state_dtypes)
        evidence.append(f"after {use.steps} step{'s' if use.steps != 1 else ''} its state was: {state}")
    return tuple(evidence)


def _judge_optimizer(span: Span, observations: Observations) -> Judgement:
    uses = [use for use in observations.optimizers if span.holds(use.site)]
    if not uses:
        return NOT_REACHED, (f"no optimizer was built at {_describe(span)}",), None
    half = [use for use in uses if use.half_params]
    deciding = half or uses
    evidence = tuple(line for use in deciding for line in _optimizer_evidence(use))
    return (CONFIRMED if half else REFUTED), evidence, deciding[0].device


def _describe(span: Span) -> str:
    return Site(span.path, span.first).describe()


def _covered(site: Site, spans: Sequence[Span]) -> bool:
    return any(span.holds(site) for span in spans)


def _runtime_finding(code: RuntimeCode, site: Site, evidence: tuple[str, ...], device: str | None) -> Finding:
    return Finding(
        code=code.code,
        name=code.name,
        path=display_path(site.path),
        line=site.line,
        column=1,
        end_line=site.line,
        end_column=1,
        message=code.message,
        verdict=RUNTIME_ONLY,
        evidence=evidence,
        device=device,
    )


def _half_log_softmax(observations: Observations, spans: Sequence[Span]) -> list[Finding]:
    by_site: dict[Site, list[tuple[OpCall, int]]] = {}
    # The static rule deliberately leaves mean-reduced cross_entropy alone (the standard training
    # loss); a line that computes one is not a runtime-only log-prob finding either.
    loss_sites = {call.site for call, _ in observations.op_calls if call.op == REDUCED_LOSS}
    for call, count in observations.op_calls:
        if call.op in LOG_SPACE_OPS and not call.backward and _runs_half(call) and not _covered(call.site, spans):
            if call.site not in loss_sites:
                by_site.setdefault(call.site, []).append((call, count))
    return [_runtime_finding(MP901, site, _op_evidence(calls), calls[0][0].device) for site, calls in by_site.items()]


def _unscaled_backward(observations: Observations, spans: Sequence[Span]) -> list[Finding]:
    """Unscaled fp16 backward passes: reported at their fp16 autocast call, else at `backward()`."""
    by_site: dict[Site, list[BackwardPass]] = {}
    causes: dict[Site, str] = {}
    for backward in observations.backward_passes:
        if backward.scaled:
            continue
        fp16_regions = [region for region in backward.regions if _is_fp16(region) and region.site is not None]
        if any(_in(span, region) for region in fp16_regions for span in spans):
            continue
        fp16_sites = [region.site for region in fp16_regions if region.site is not None]
        for site in fp16_sites:
            by_site.setdefault(site, []).append(backward)
            causes[site] = f"float16 autocast at {site.describe()}"
        if not fp16_sites and backward.fp16_ops:
            by_site.setdefault(backward.site, []).append(backward)
            causes[backward.site] = "float16 forward ops"
    return [
        _runtime_finding(MP902, site, _backward_evidence(passes, causes[site]), passes[0].device)
        for site, passes in by_site.items()
    ]


def _half_optimizers(observations: Observations, spans: Sequence[Span]) -> list[Finding]:
    return [
        _runtime_finding(MP903, use.site, _optimizer_evidence(use), use.device)
        for use in observations.optimizers
        if use.half_params and not _covered(use.site, spans)
    ]
