"""`mplint verify`: the click command. Imports torch only when it runs."""

from __future__ import annotations

import click


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
def verify(script: str, script_args: tuple[str, ...]) -> None:
    """Run SCRIPT for a few optimizer steps and confirm each finding with real dtypes."""
    raise click.UsageError("mplint verify is not built yet")
