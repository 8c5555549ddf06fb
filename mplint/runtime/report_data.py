"""The data an HTML report draws, built from a verify run: plain JSON-able values, nothing left to compute.

The reporter (`mplint/report/html.py`) only lays these out; every count, share and limit is decided here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from mplint.config import display_path
from mplint.findings import Finding
from mplint.report.json import finding_object
from mplint.runtime.details import EVERY_NTH_STEP, EVERY_STEP_UNTIL
from mplint.runtime.observations import (
    GRADIENT_EXPONENT_MAX,
    GRADIENT_EXPONENT_MIN,
    GradientHistogram,
    Observations,
)
from mplint.runtime.outcome import Verdict, run_metadata
from mplint.runtime.runner import ScriptRun

# float16's limits, as binary exponents of the histogram's bins (bin e holds 2**(e-1) <= |g| < 2**e).
FP16_SMALLEST_SUBNORMAL_EXPONENT = -24  # 2**-24 ~ 6.0e-8; below half of it a value rounds to zero
FP16_SMALLEST_NORMAL_EXPONENT = -14  # 2**-14 ~ 6.1e-5; below it values lose precision (subnormal)
FP16_MAX = 65504.0
SOURCE_CONTEXT = 3  # lines shown around a finding's lines


def build(
    run: ScriptRun,
    script: str,
    script_args: Sequence[str],
    findings: Sequence[Finding],
    static_only: Sequence[Finding],
    verdict: Verdict,
    *,
    steps_requested: int | None,
) -> dict[str, Any]:
    observations = run.observations
    shown = sorted([*findings, *static_only], key=Finding.sort_key)
    metadata = run_metadata(run, script, script_args, verdict)
    metadata["steps_requested"] = steps_requested
    metadata["device_name"] = _device_name(run.device)
    timeline = _timeline(observations)
    return {
        "run": metadata,
        "findings": [finding_object(finding) for finding in shown],
        "sources": _sources(shown, [(row["path"], row["line"]) for row in timeline["rows"]]),
        "timeline": timeline,
        "gradients": _gradients(observations.gradients, observations.gradient_steps),
        "underflow": _measured_underflow(observations),
        "scaler": [
            {"call": step.call, "scale": step.scale, "skipped": step.skipped} for step in observations.scaler_steps
        ],
        "optimizers": [
            {
                "kind": use.kind,
                "path": display_path(use.site.path),
                "line": use.site.line,
                "device": use.device,
                "steps": use.steps,
                "params": [list(item) for item in use.param_dtypes],
                "params_at_last_step": [list(item) for item in use.step_param_dtypes],
                "state": [list(item) for item in use.state_dtypes],
            }
            for use in observations.optimizers
        ],
        "regions": [
            {
                "path": display_path(region.site.path),
                "line": region.site.line,
                "device_type": region.device_type,
                "dtype": region.dtype,
                "enabled": region.enabled,
                "ran_on": region.device,
            }
            for region in observations.regions
            if region.site is not None
        ],
    }


def _device_name(device: str) -> str:
    import torch

    from mplint.runtime.facade import DEVICE_NAME

    if device == "cuda":
        return str(torch.cuda.get_device_name())
    if device == "emulated-cuda":
        return DEVICE_NAME
    return "CPU"


def _timeline(observations: Observations) -> dict[str, Any]:
    """One row per (line, op, dtype), the calls per optimizer step as columns."""
    steps = sorted({line_op.step for line_op, _ in observations.timeline})
    column = {step: index for index, step in enumerate(steps)}
    rows: dict[tuple[str, int, str, str], list[int]] = defaultdict(lambda: [0] * len(steps))
    for line_op, count in observations.timeline:
        key = (display_path(line_op.site.path), line_op.site.line, line_op.op, line_op.dtype)
        rows[key][column[line_op.step]] += count
    return {
        "steps": steps,
        "rows": [
            {"path": path, "line": line, "op": op, "dtype": dtype, "calls": calls}
            for (path, line, op, dtype), calls in sorted(rows.items())
        ],
    }


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _step_ranges(steps: Sequence[int]) -> str:
    """`1–10, 20, 25`: the steps, consecutive ones as ranges."""
    ranges: list[list[int]] = []
    for step in steps:
        if ranges and step == ranges[-1][-1] + 1:
            ranges[-1][1:] = [step]
        else:
            ranges.append([step])
    return ", ".join("–".join(map(str, bounds)) for bounds in ranges)


def _gradients(histograms: Iterable[GradientHistogram], measured_steps: Sequence[int]) -> dict[str, Any]:
    exponents = list(range(GRADIENT_EXPONENT_MIN, GRADIENT_EXPONENT_MAX + 1))

    def counted(low: int, high: int, histogram: GradientHistogram) -> int:
        """Values in the bins low..high (exponents, inclusive)."""
        return sum(histogram.exponents[low - GRADIENT_EXPONENT_MIN : high - GRADIENT_EXPONENT_MIN + 1])

    params = []
    for histogram in histograms:
        values = histogram.values
        # Below 2**-25 fp16 rounds to zero; up to its smallest normal it keeps fewer bits (subnormal).
        flushed = counted(GRADIENT_EXPONENT_MIN, FP16_SMALLEST_SUBNORMAL_EXPONENT - 1, histogram)
        subnormal = counted(FP16_SMALLEST_SUBNORMAL_EXPONENT, FP16_SMALLEST_NORMAL_EXPONENT, histogram)
        overflow = counted(17, GRADIENT_EXPONENT_MAX, histogram)  # |g| >= 2**16 > 65504
        params.append(
            {
                "name": histogram.name,
                "dtype": histogram.dtype,
                "shape": list(histogram.shape),
                "steps": histogram.steps,
                "values": values,
                "zeros": histogram.zeros,
                "flushed": flushed,
                "subnormal": subnormal,
                "overflow": overflow,
                "non_finite": histogram.non_finite,
                "zero_share": _share(histogram.zeros, values),
                "flushed_share": _share(flushed, values),
                "subnormal_share": _share(subnormal, values),
                "counts": list(histogram.exponents),
            }
        )
    return {
        "measured_steps": list(measured_steps),
        "measured_steps_text": _step_ranges(measured_steps),
        "sampling": f"Measured at each of the first {EVERY_STEP_UNTIL} optimizer steps, then at every "
        f"{EVERY_NTH_STEP}th and at the last one --steps allows; the counts add up the steps measured. A step "
        "a GradScaler skipped (inf/nan gradients) runs no optimizer step, so it is not among them: see the "
        "scale and skipped steps below.",
        "exponents": exponents,
        "fp16_smallest_subnormal_exponent": FP16_SMALLEST_SUBNORMAL_EXPONENT,
        "fp16_smallest_normal_exponent": FP16_SMALLEST_NORMAL_EXPONENT,
        "fp16_max": FP16_MAX,
        "params": params,
    }


def _measured_underflow(observations: Observations) -> list[dict[str, Any]]:
    """The recorder's own measurement inside unscaled fp16 backward passes, per `backward()` line."""
    by_site: dict[tuple[str, int], list[int]] = {}
    for backward in observations.backward_passes:
        if backward.fp16_values:
            totals = by_site.setdefault((display_path(backward.site.path), backward.site.line), [0, 0, 0])
            totals[0] += 1
            totals[1] += backward.fp16_values
            totals[2] += backward.underflowed
    return [
        {"path": path, "line": line, "passes": passes, "values": values, "underflowed": lost, "share": lost / values}
        for (path, line), (passes, values, lost) in sorted(by_site.items())
    ]


def _sources(findings: Sequence[Finding], lines: Iterable[tuple[str, int]]) -> dict[str, dict[str, str]]:
    """The text of the lines the report shows: each finding's with a few around it, each timeline row's."""
    from mplint.run.discovery import read_source
    from mplint.text import split_lines

    wanted: dict[str, set[int]] = defaultdict(set)
    for finding in findings:
        first = max(1, finding.line - SOURCE_CONTEXT)
        wanted[finding.path].update(range(first, max(finding.line, finding.end_line) + SOURCE_CONTEXT + 1))
    for path, line in lines:
        wanted[path].add(line)
    sources: dict[str, dict[str, str]] = {}
    for path, numbers in sorted(wanted.items()):
        text = read_source(path, path).text
        if text is None:
            continue
        file_lines = split_lines(text)
        sources[path] = {
            str(number): file_lines[number - 1].rstrip("\r\n")
            for number in sorted(numbers)
            if number <= len(file_lines)
        }
    return sources
