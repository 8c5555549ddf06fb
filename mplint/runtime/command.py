"""`mplint verify`: run a training script for a few steps and confirm each finding with real dtypes.

Imports torch only when it runs (through the runtime modules' functions).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys

import click

from mplint.errors import MplintError
from mplint.findings import Finding
from mplint.report import renderer
from mplint.runtime import DEVICES

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
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one object with the run's metadata (device, steps, script status...) and the findings.",
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
) -> None:
    """Run SCRIPT for a few optimizer steps and confirm each finding with real dtypes.

    Arguments after `--` go to the script; processes it starts (torch.multiprocessing.spawn
    workers, multiprocessing) are recorded too.

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
    # JSON goes to stdout alone: the script's own prints are sent to stderr.
    script_stdout = contextlib.redirect_stdout(sys.stderr) if output_format == "json" else contextlib.nullcontext()
    try:
        with script_stdout:
            run = run_script(script, script_args, device=device, steps=steps, timeout=timeout, progress=progress)
        observations = distributed.gather(run.observations)
        if observations is not None:
            run = dataclasses.replace(run, observations=observations)
            judged, static_only = split_static(static_findings(run.user_files, every_code=True))
            findings = fixes.visible(join(judged, observations), unsafe_fixes)
            static_only = list(fixes.visible(static_only, unsafe_fixes))
    except MplintError as error:
        _exit(f"mplint: {error}", EXIT_ERROR)
    except Exception as error:  # noqa: BLE001 - a bug in mplint: one line, never a traceback
        from mplint.cli import ISSUE_TRACKER  # the command module is imported by the CLI's

        what = f"internal error while verifying {script}: {type(error).__name__}: {error}"
        _exit(f"mplint: {what}; please report this at {ISSUE_TRACKER}", EXIT_ERROR)
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
    if output_format == "json":
        click.echo(outcome.json_document(run, script, script_args, findings, static_only, verdict))
    else:
        shown = sorted([*findings, *static_only], key=Finding.sort_key)
        if shown:
            click.echo(renderer("text")(shown))
        click.echo(outcome.summary(run, findings, static_only, verdict), err=True)
    sys.exit(verdict.exit_status)


def _exit(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)
