"""`mplint verify`: run a training script for a few steps and confirm each finding with real dtypes.

Imports torch only when it runs (through the runtime modules' functions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from mplint.errors import MplintError
from mplint.findings import Finding
from mplint.report import renderer
from mplint.runtime import DEVICES

if TYPE_CHECKING:
    from mplint.runtime.outcome import Verdict
    from mplint.runtime.runner import ScriptRun

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR, EXIT_UNVERIFIED = 0, 1, 2, 3


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--steps", type=click.IntRange(min=1), default=2, show_default=True, help="Stop after this many optimizer steps."
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="auto: CUDA when available, else emulate CUDA on the CPU (emulate-cuda); cpu: run as plain python "
    "would on this machine (CUDA regions cannot be checked).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "sarif", "github"]),
    default="text",
    show_default=True,
    help="json: one object with the run's metadata (device, steps, script status...) and the findings; "
    "sarif: a SARIF 2.1.0 log for code scanning, verdicts in each result's properties; github: annotations.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Also write a self-contained HTML report (findings with their source, dtype timeline, gradient "
    "underflow, loss scale, optimizer state) to this file.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop the script after S seconds."
)
@click.option("--unsafe-fixes", is_flag=True, help="Show as fixable the fixes that may change behaviour.")
def verify(
    script: str,
    script_args: tuple[str, ...],
    steps: int,
    device: str,
    output_format: str,
    timeout: float | None,
    unsafe_fixes: bool,
    report_path: str | None,
) -> None:
    """Run SCRIPT for a few optimizer steps and confirm each finding with real dtypes.

    Arguments after `--` go to the script; processes it starts (torch.multiprocessing.spawn
    workers, multiprocessing) are recorded too. When GITHUB_STEP_SUMMARY is set, a Markdown table
    of the findings and their verdicts is appended to that file.

    \b
    Exit status:
      0  clean: at least one optimizer step ran and every static finding was refuted
      1  a finding was confirmed or seen only at run time (or not reached: it stands)
      2  the script failed or ran past --timeout, bad usage, or mplint failed
      3  nothing was verified: no optimizer step was recorded, or a finding could
         not be checked on this device (a CUDA region on --device cpu)
    """
    from mplint import fixes
    from mplint.runtime import distributed, outcome
    from mplint.runtime.join import join, split_static, static_findings
    from mplint.runtime.runner import Outcome, run_script

    if not os.path.isfile(script):
        problem = "is a directory, not a script" if os.path.isdir(script) else "no such file or directory"
        _exit(f"mplint: {script}: {problem}", EXIT_ERROR)
    progress = sys.stderr.isatty()
    # A machine-readable report goes to stdout alone: the script's own prints are sent to stderr.
    script_stdout = contextlib.redirect_stdout(sys.stderr) if output_format != "text" else contextlib.nullcontext()
    try:
        with script_stdout:
            run = run_script(
                script,
                script_args,
                device=device,
                steps=steps,
                timeout=timeout,
                progress=progress,
                details=report_path is not None,
            )
        observations = distributed.gather(run.observations)
        if observations is not None:
            run = dataclasses.replace(run, observations=observations)
            judged, static_only = split_static(static_findings(run.user_files, every_code=True))
            findings = fixes.visible(join(judged, observations), unsafe_fixes)
            static_only = list(fixes.visible(static_only, unsafe_fixes))
    except MplintError as error:
        _exit(f"mplint: {error}", EXIT_ERROR)
    except Exception as error:  # noqa: BLE001 - a bug in mplint: one line, never a traceback
        _internal_error(f"verifying {script}", error)
    if observations is None:  # a rank other than 0: rank 0 prints the merged report
        sys.exit(EXIT_ERROR if run.outcome is Outcome.FAILED else EXIT_CLEAN)
    if run.outcome is Outcome.FAILED:
        header = run.failure if run.traceback and not run.traceback.endswith(run.failure) else "the script failed"
        click.echo(f"mplint verify: {header}; its own traceback follows:\n{run.traceback or run.failure}", err=True)
        if run.hint:
            click.echo(f"mplint verify: {run.hint}.", err=True)
    elif run.failure:
        click.echo(f"mplint verify: stopped early: {run.failure}", err=True)
    verdict = outcome.overall(run, findings)
    shown = sorted([*findings, *static_only], key=Finding.sort_key)
    if output_format == "json":
        click.echo(outcome.json_document(run, script, script_args, findings, static_only, verdict))
    elif shown or output_format == "sarif":  # an empty SARIF log still says the run was checked
        click.echo(renderer(output_format)(shown))
    if output_format != "json":
        click.echo(outcome.summary(run, findings, static_only, verdict), err=True)
    if report_path is not None:
        try:
            _write_report(report_path, run, script, script_args, findings, static_only, verdict, steps)
        except Exception as error:  # noqa: BLE001 - a bug in mplint: one line, never a traceback
            _internal_error(f"writing the report of {script}", error)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        _append_step_summary(step_summary, run, script, shown, verdict)
    sys.exit(verdict.exit_status)


def _write_report(
    path: str,
    run: ScriptRun,
    script: str,
    script_args: tuple[str, ...],
    findings: Sequence[Finding],
    static_only: Sequence[Finding],
    verdict: Verdict,
    steps: int,
) -> None:
    from mplint.report import html
    from mplint.runtime import report_data

    data = report_data.build(run, script, script_args, findings, static_only, verdict, steps_requested=steps)
    try:
        with open(path, "w", encoding="utf-8") as file:
            file.write(html.render(data))
    except OSError as error:
        _exit(f"mplint: cannot write the report to {path}: {error.strerror or error}", EXIT_ERROR)
    click.echo(f"mplint verify: report written to {path}", err=True)


def _append_step_summary(path: str, run: ScriptRun, script: str, findings: Sequence[Finding], verdict: Verdict) -> None:
    """GitHub Actions shows what a step appends to $GITHUB_STEP_SUMMARY on the run's page."""
    from mplint.report import markdown
    from mplint.runtime.outcome import headline

    server, repository, commit = (
        os.environ.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_SHA")
    )
    blob_url = f"{server}/{repository}/blob/{commit}" if server and repository and commit else None
    try:
        with open(path, "a", encoding="utf-8") as file:
            status = f"{headline(run, findings)} Exit status {verdict.exit_status}" + (
                f": {verdict.reason}." if verdict.reason else "."
            )
            file.write(markdown.step_summary(script, status, findings, blob_url))
    except OSError as error:
        _exit(f"mplint: cannot append to GITHUB_STEP_SUMMARY ({path}): {error.strerror or error}", EXIT_ERROR)


def _internal_error(doing: str, error: Exception) -> None:
    from mplint.cli import ISSUE_TRACKER  # the command module is imported by the CLI's

    what = f"internal error while {doing}: {type(error).__name__}: {error}"
    _exit(f"mplint: {what}; please report this at {ISSUE_TRACKER}", EXIT_ERROR)


def _exit(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)
