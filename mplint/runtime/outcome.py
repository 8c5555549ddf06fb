"""What a verify run amounts to: its exit status, the reason, the summary line and the JSON document.

Exit statuses, most important first:
  2  the script failed (raised, sys.exit with a failure status), ran past --timeout, or mplint failed;
  1  a finding was confirmed, or a problem was seen only at run time;
  3  nothing was verified: no optimizer step was recorded (in the script or any process it
     started), or a finding could not be checked on this device (a CUDA region on a CPU run);
  1  a static finding was not reached: its static status stands, as `mplint` reports it;
  0  at least one optimizer step ran, and every static finding was refuted (or there were none).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mplint.findings import Finding
from mplint.runtime.join import CONFIRMED, NOT_APPLICABLE, NOT_REACHED, RUNTIME_ONLY
from mplint.runtime.runner import Outcome, ScriptRun

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR, EXIT_UNVERIFIED = 0, 1, 2, 3


@dataclass(frozen=True)
class Verdict:
    """The run's overall verdict: the exit status and, when it is not 0 or 1 for findings, why."""

    exit_status: int
    reason: str


def overall(run: ScriptRun, findings: Sequence[Finding]) -> Verdict:
    verdicts = [finding.verdict for finding in findings]
    if run.outcome is Outcome.TIMED_OUT:
        return Verdict(EXIT_ERROR, run.failure)
    if run.outcome is Outcome.FAILED:
        return Verdict(EXIT_ERROR, f"the script failed (exit status {run.exit_status})")
    if CONFIRMED in verdicts or RUNTIME_ONLY in verdicts:
        return Verdict(EXIT_FINDINGS, "a finding was confirmed or seen only at run time")
    if run.observations.steps == 0:
        return Verdict(EXIT_UNVERIFIED, _no_steps_reason(run))
    if NOT_APPLICABLE in verdicts:
        count = verdicts.count(NOT_APPLICABLE)
        return Verdict(
            EXIT_UNVERIFIED,
            f"{count} finding{_s(count)} could not be checked on {run.device}: "
            "run on a GPU or with --device emulate-cuda",
        )
    if NOT_REACHED in verdicts:
        return Verdict(EXIT_FINDINGS, "a static finding was not reached: its static report stands")
    return Verdict(EXIT_CLEAN, "")


def _no_steps_reason(run: ScriptRun) -> str:
    where = "in the script or in any process it started"
    if not run.observations.recorded:
        return f"nothing was verified: no op, optimizer or backward pass ran in your code ({where})"
    return f"nothing was verified: no optimizer step was recorded ({where})"


def headline(run: ScriptRun, findings: Sequence[Finding]) -> str:
    """`2 optimizer steps recorded; 1 confirmed.`: the first line of the summary, and of a CI step summary."""
    observations = run.observations
    counts = ", ".join(
        f"{sum(f.verdict == v for f in findings)} {v}" for v in sorted({f.verdict for f in findings if f.verdict})
    )
    where = ""
    if observations.ranks > 1:
        where = f" on {observations.ranks} ranks"
    elif observations.processes > 1:
        where = f" in {observations.processes} processes"
    return f"{observations.steps} optimizer step{_s(observations.steps)} recorded{where}; {counts or 'no findings'}."


def summary(run: ScriptRun, findings: Sequence[Finding], static_only: Sequence[Finding], verdict: Verdict) -> str:
    """The last line(s) on stderr: steps, where, verdict counts, static-only findings, and why it did not pass."""
    observations = run.observations
    lines = [f"mplint verify: {headline(run, findings)}"]
    if run.device == "emulated-cuda" and observations.recorded and not observations.cuda_used:
        lines.append(
            "mplint verify: CUDA was emulated, but the script placed nothing on CUDA and opened no CUDA autocast "
            "region: its device choice fell to the CPU, so it ran as plain python runs it here (CPU's policy)."
        )
    if observations.steps_refused:
        refused = observations.steps_refused
        lines.append(
            f"mplint verify: the script caught mplint's stop after step {observations.steps} (a bare `except:` or "
            f"`except BaseException`) and kept going: {refused} later optimizer step{_s(refused)} "
            f"{'was' if refused == 1 else 'were'} refused; what is reported is what the first "
            f"{observations.steps} step{_s(observations.steps)} ran."
        )
    if observations.compiled:
        calls = observations.compiled
        lines.append(
            f"mplint verify: torch.compile ({calls} call{_s(calls)}) was run eagerly: the verdicts are those of "
            "the eager ops, which compiled kernels follow for dtypes but may fuse differently."
        )
    if static_only:
        codes = ", ".join(sorted({finding.code for finding in static_only}))
        lines.append(
            f"mplint verify: {len(static_only)} static-only finding{_s(len(static_only))} ({codes}) "
            "shown as `mplint` reports them: the run does not check them."
        )
    if verdict.exit_status == EXIT_UNVERIFIED:
        lines.append(f"mplint verify: {verdict.reason} (exit {verdict.exit_status}).")
    return "\n".join(lines)


def run_metadata(run: ScriptRun, script: str, script_args: Sequence[str], verdict: Verdict) -> dict[str, Any]:
    """What ran, where, and how it ended: the head of the JSON document and of the HTML report."""
    import torch

    from mplint import __version__

    observations = run.observations
    return {
        "script": script,
        "argv": list(script_args),
        "device": run.device,
        "cuda": {"cuda": "real", "emulated-cuda": "emulated"}.get(run.device, "none"),
        "ranks": observations.ranks,
        "processes": observations.processes,
        "steps": observations.steps,
        "compile": "eager" if observations.compiled else None,
        "steps_refused": observations.steps_refused,
        "verified": verdict.exit_status in (EXIT_CLEAN, EXIT_FINDINGS) and observations.steps > 0,
        "exit_status": verdict.exit_status,
        "reason": verdict.reason,
        "script_status": {
            "outcome": run.outcome.value,
            "exit_status": run.exit_status,
            "failure": run.failure or None,
            "hint": run.hint or None,
            "traceback": run.traceback or None,
        },
        "duration_s": round(run.duration, 3),
        "mplint": __version__,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }


def json_document(
    run: ScriptRun,
    script: str,
    script_args: Sequence[str],
    findings: Sequence[Finding],
    static_only: Sequence[Finding],
    verdict: Verdict,
) -> str:
    """One object: the run's metadata, then the findings with their verdicts (as `mplint --format json`)."""
    from mplint.report.json import render

    document = run_metadata(run, script, script_args, verdict)
    document["findings"] = json.loads(render(findings))
    document["static_only"] = json.loads(render(static_only))
    return json.dumps(document, indent=2)


def _s(count: int) -> str:
    return "" if count == 1 else "s"
