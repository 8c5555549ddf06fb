"""`mplint verify`: run a training script for a few steps and confirm each finding with real dtypes.

Imports torch only when it runs (through the runtime modules' functions).
"""

from __future__ import annotations

import contextlib
import sys

import click

from mplint.errors import MplintError
from mplint.findings import Finding
from mplint.report import renderer
from mplint.runtime import DEVICES

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("script", type=click.Path(exists=True, dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--steps", type=click.IntRange(min=1), default=2, show_default=True, help="Stop after this many optimizer steps."
)
@click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="auto: CUDA when available, else emulate CUDA's autocast policy on the CPU.",
)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop the script after S seconds."
)
def verify(
    script: str, script_args: tuple[str, ...], steps: int, device: str, output_format: str, timeout: float | None
) -> None:
    """Run SCRIPT for a few optimizer steps and confirm each finding with real dtypes.

    Arguments after `--` go to the script. Exit 1 when a finding is confirmed or found only at
    run time, 0 when clean, 2 when the script or mplint failed.
    """
    from mplint.runtime import distributed
    from mplint.runtime.join import has_problems, join, static_findings
    from mplint.runtime.runner import Outcome, run_script

    progress = sys.stderr.isatty()
    # JSON goes to stdout alone: the script's own prints are sent to stderr.
    script_stdout = contextlib.redirect_stdout(sys.stderr) if output_format == "json" else contextlib.nullcontext()
    try:
        with script_stdout:
            run = run_script(script, script_args, device=device, steps=steps, timeout=timeout, progress=progress)
        observations = distributed.gather(run.observations)
        findings = join(static_findings(run.user_files), observations) if observations is not None else ()
    except MplintError as error:
        _exit(f"mplint: {error}", EXIT_ERROR)
    except Exception as error:  # noqa: BLE001 - a bug in mplint: one line, never a traceback
        from mplint.cli import ISSUE_TRACKER  # the command module is imported by the CLI's

        what = f"internal error while verifying {script}: {type(error).__name__}: {error}"
        _exit(f"mplint: {what}; please report this at {ISSUE_TRACKER}", EXIT_ERROR)
    if observations is None:  # a rank other than 0: rank 0 prints the merged report
        sys.exit(EXIT_ERROR if run.outcome is Outcome.FAILED else EXIT_CLEAN)
    if run.failure:
        header = "the script failed; its own traceback follows" if run.outcome is Outcome.FAILED else "stopped early"
        click.echo(f"mplint verify: {header}:\n{run.failure}", err=True)
    click.echo(renderer(output_format)(findings))
    if output_format == "text":
        click.echo(_summary(findings, observations.steps, observations.ranks), err=True)
    if run.outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if has_problems(findings) else EXIT_CLEAN)


def _summary(findings: tuple[Finding, ...], steps: int, ranks: int) -> str:
    verdicts = ", ".join(
        f"{sum(f.verdict == v for f in findings)} {v}" for v in sorted({f.verdict for f in findings if f.verdict})
    )
    on_ranks = f" on {ranks} ranks" if ranks > 1 else ""
    plural = "s" if steps != 1 else ""
    return f"mplint verify: {steps} optimizer step{plural} recorded{on_ranks}; {verdicts or 'no findings'}."


def _exit(message: str, code: int) -> None:
    click.echo(message, err=True)
    sys.exit(code)
