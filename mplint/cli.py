"""The `mplint` command line: parse options, call the API, print through a reporter, exit.

Exit codes: 0 nothing found, 1 findings, 2 usage error, bad configuration or internal error.
The module imports only click and light parts of mplint, so `mplint --version` stays fast:
commands import the engine and the rules when they run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from mplint import __version__
from mplint.errors import InternalError, MplintError
from mplint.findings import Finding
from mplint.report import FORMATS, renderer
from mplint.runtime.command import verify

if TYPE_CHECKING:
    from mplint.fixes import FixResult

EXIT_CLEAN = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2

ISSUE_TRACKER = "the mplint issue tracker"

# Set when the arguments end with a bare `--`: the caller (a hook runner) had no files to
# pass, so there is nothing to check; without the `--`, no paths means the current directory.
_NOTHING_AFTER_SEPARATOR = "mplint.nothing_after_separator"
_GROUP_OPTIONS = frozenset({"--help", "--version"})


class _CheckByDefault(click.Group):
    """`mplint [OPTIONS] [PATHS]` is `mplint check [OPTIONS] [PATHS]` unless it names a command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[-1] == "--" and args.index("--") == len(args) - 1:
            ctx.meta[_NOTHING_AFTER_SEPARATOR] = True
        if not args or (args[0] not in self.commands and args[0] not in _GROUP_OPTIONS):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_CheckByDefault)
@click.version_option(__version__, "--version", prog_name="mplint", message="%(prog)s %(version)s")
def main() -> None:
    """Find mixed-precision bugs in PyTorch training code.

    Without a command, mplint runs `check`: `mplint train.py` is `mplint check train.py`.
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--select",
    multiple=True,
    metavar="CODES",
    help="Codes or prefixes to report (comma-separated, repeatable; ALL for every rule). "
    "Replaces the configured selection.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="CODES",
    help="Codes or prefixes not to report (comma-separated, repeatable).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="How findings are printed on stdout.",
)
@click.option(
    "--config",
    "config_file",
    metavar="FILE",
    help="Read settings from FILE: a pyproject.toml ([tool.mplint]) or a TOML file with the "
    "same keys at its top level. Default: the nearest pyproject.toml with [tool.mplint].",
)
@click.option(
    "--stdin-filename",
    metavar="NAME",
    help="Read the source from stdin (path `-`, or no path) and report it as the file NAME.",
)
@click.option(
    "--fix",
    is_flag=True,
    help="Apply the safe fixes in place, then report what remains. With stdin, print the "
    "fixed source on stdout and the findings on stderr.",
)
@click.option(
    "--unsafe-fixes",
    is_flag=True,
    help="Also apply (with --fix or --diff) or show as fixable the fixes that may change "
    "behaviour.",
)
@click.option(
    "--diff",
    is_flag=True,
    help="Print the fixes as a unified diff instead of applying them; exit 1 if there is "
    "something to fix.",
)
@click.pass_context
def check(
    ctx: click.Context,
    paths: tuple[str, ...],
    select: tuple[str, ...],
    ignore: tuple[str, ...],
    output_format: str,
    config_file: str | None,
    stdin_filename: str | None,
    fix: bool,
    unsafe_fixes: bool,
    diff: bool,
) -> None:
    """Check PATHS (files and directories; default: the current directory)."""
    if ctx.meta.get(_NOTHING_AFTER_SEPARATOR) and not paths:
        ctx.exit(EXIT_CLEAN)
    from_stdin = paths == ("-",) or (not paths and stdin_filename is not None)
    subject = (stdin_filename or "<stdin>") if from_stdin else ", ".join(paths) or "."
    with _errors_reported(f"checking {subject}"):
        from mplint import api, fixes

        options: dict[str, Any] = {
            "select": select or None,
            "ignore": ignore or None,
            "config_file": config_file,
        }
        if "-" in paths and not from_stdin:
            raise MplintError("'-' (standard input) cannot be combined with other paths")
        source = click.get_binary_stream("stdin").read() if from_stdin else None
        name = stdin_filename or api.STDIN
        fixed: fixes.FixResult | None = None
        if (fix or diff) and source is not None:
            fixed = api.fix_source(source, name, unsafe=unsafe_fixes, **options)
        elif fix or diff:
            fixed = api.fix_paths(paths or (".",), unsafe=unsafe_fixes, write=not diff, **options)
        if fixed is not None:
            findings: Sequence[Finding] = fixed.findings
            files_checked = fixed.files_checked
        elif source is not None:
            findings, files_checked = api.lint_source(source, name, **options), 1
        else:
            result = api.lint_paths(paths or (".",), **options)
            findings, files_checked = result.findings, result.files_checked
        output = renderer(output_format)(fixes.visible(findings, unsafe_fixes))
        if fixed is not None and fixed.changes and source is not None:
            source = fixed.changes[0].after.encode(fixes.source_encoding(source))

    if fixed is None:
        if output:
            click.echo(output)
        click.echo(_summary(findings, files_checked), err=True)
        ctx.exit(EXIT_FINDINGS if findings else EXIT_CLEAN)
    _report_fixes(ctx, fixed, output, diff, source if fix else None)


def _report_fixes(
    ctx: click.Context, result: FixResult, output: str, diff: bool, stdin_source: bytes | None
) -> None:
    """What `--fix` and `--diff` print. `--diff` shows the changes and exits 1 if there are any;
    `--fix` reports what remains (with stdin, the source goes to stdout and the findings to
    stderr, as editors expect) and exits 1 if anything does."""
    from mplint.fixes import unified_diff

    for notice in result.notices:
        click.echo(f"mplint: {notice}", err=True)
    if diff:
        click.echo("".join(unified_diff(change) for change in result.changes), nl=False)
        click.echo(f"Would fix {_count(result.fixed, 'finding')}.", err=True)
        ctx.exit(EXIT_FINDINGS if result.changes or result.notices else EXIT_CLEAN)
    if stdin_source is not None:
        click.get_binary_stream("stdout").write(stdin_source)
    if output:
        click.echo(output, err=stdin_source is not None)
    remaining = len(result.findings)
    click.echo(f"Fixed {_count(result.fixed, 'finding')} ({remaining} remaining).", err=True)
    ctx.exit(EXIT_FINDINGS if result.findings else EXIT_CLEAN)


@main.command("rules")
def list_rules() -> None:
    """List the rules: code, name, autofix (safe, unsafe or -) and what each catches."""
    with _errors_reported("loading the rules"):
        from mplint.registry import all_rules

        rows = [("CODE", "NAME", "FIX", "SUMMARY")] + [
            (rule.CODE, rule.NAME, rule.FIX.value if rule.FIX else "-", rule.summary())
            for rule in all_rules()
        ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths)]
        click.echo("  ".join([*cells, row[3]]))


@main.command()
@click.argument("rule")
def explain(rule: str) -> None:
    """Show the full documentation of RULE (a code such as MP001, or a rule name)."""
    with _errors_reported("loading the rules"):
        from mplint.registry import all_rules

        found = [r for r in all_rules() if rule.upper() == r.CODE or rule.lower() == r.NAME]
    if not found:
        _fail(f"unknown rule '{rule}'; `mplint rules` lists them")
    click.echo(f"{found[0].CODE} ({found[0].NAME})\n\n{found[0].docs()}")


main.add_command(verify)


@contextlib.contextmanager
def _errors_reported(activity: str) -> Iterator[None]:
    """Turn any exception into one line on stderr and exit 2: users never see a traceback."""
    try:
        yield
    except MplintError as error:
        _fail(str(error))
    except InternalError as error:  # the engine names the file it was checking
        _fail(f"internal error: {error}; please report this at {ISSUE_TRACKER}")
    except Exception as error:  # noqa: BLE001 - the last line of defence is the point
        _fail(
            f"internal error while {activity}: {type(error).__name__}: {error}; "
            f"please report this at {ISSUE_TRACKER}"
        )


def _fail(message: str) -> None:
    click.echo(f"mplint: {message}", err=True)
    raise click.exceptions.Exit(EXIT_ERROR)


def _summary(findings: Sequence[Finding], files_checked: int) -> str:
    if files_checked == 0:
        return "No Python files found."
    if not findings:
        return f"All checks passed ({_count(files_checked, 'file')})."
    files_with_findings = len({finding.path for finding in findings})
    return f"Found {_count(len(findings), 'finding')} in {_count(files_with_findings, 'file')}."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
