"""The `mplint` command line: parse options, call the API, print through a reporter, exit.

Exit codes: 0 nothing found, 1 findings, 2 usage error, bad configuration or internal error.
The module imports only click and light parts of mplint, so `mplint --version` stays fast:
commands import the engine and the rules when they run.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from mplint import __version__
from mplint.errors import InternalError, MplintError
from mplint.findings import Finding
from mplint.report import FORMATS, STATISTICS_FORMATS, renderer, statistics_renderer, text
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

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # click would say "Aborted!" and exit 1, which reads as "findings"
            click.echo("mplint: interrupted", err=True)
            ctx.exit(2)


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
    help="Also apply (with --fix or --diff) or show as fixable the fixes that may change behaviour.",
)
@click.option(
    "--diff",
    is_flag=True,
    help="Print the fixes as a unified diff instead of applying them; exit 1 if there is something to fix.",
)
@click.option(
    "--add-noqa",
    is_flag=True,
    help="Add a `# noqa: CODE` comment for every current finding, so that only new ones are reported from now on.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    help="Check files in N processes (default: the number of CPUs).",
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Neither read nor write the results cache (.mplint_cache/ at the project root).",
)
@click.option(
    "--output-file",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    metavar="PATH",
    help="Write the findings to PATH instead of stdout.",
)
@click.option("--show-source", is_flag=True, help="Show each finding's source line, a caret under it.")
@click.option("--statistics", is_flag=True, help="Print how many findings each rule has instead (as text or json).")
@click.option("--quiet", "-q", is_flag=True, help="Print the findings and nothing else.")
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
    add_noqa: bool,
    jobs: int | None,
    no_cache: bool,
    output_file: str | None,
    show_source: bool,
    statistics: bool,
    quiet: bool,
) -> None:
    """Check PATHS (files and directories; default: the current directory)."""
    if ctx.meta.get(_NOTHING_AFTER_SEPARATOR) and not paths:
        ctx.exit(EXIT_CLEAN)
    if statistics and output_format not in STATISTICS_FORMATS:
        _fail(f"--statistics prints {' or '.join(STATISTICS_FORMATS)}, not {output_format}")
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
        if add_noqa:
            if fix or diff or from_stdin:
                raise MplintError("--add-noqa edits files: not with --fix, --diff or stdin")
            result = api.lint_paths(paths or (".",), jobs=_jobs(jobs), cache=not no_cache, **options)
            _add_noqa(ctx, result.findings, quiet)
        source = sys.stdin.buffer.read() if from_stdin else None
        name = stdin_filename or api.STDIN
        fixed: fixes.FixResult | None = None
        if (fix or diff) and source is not None:
            fixed = api.fix_source(source, name, unsafe=unsafe_fixes, **options)
        elif fix or diff:
            fixed = api.fix_paths(
                paths or (".",), unsafe=unsafe_fixes, write=not diff, jobs=_jobs(jobs), cache=not no_cache, **options
            )
        if fixed is not None:
            findings: Sequence[Finding] = fixed.findings
            files_checked = fixed.files_checked
        elif source is not None:
            findings, files_checked = api.lint_source(source, name, **options), 1
        else:
            with _progress_shown(quiet) as progress:
                result = api.lint_paths(
                    paths or (".",), jobs=_jobs(jobs), cache=not no_cache, progress=progress, **options
                )
            findings, files_checked = result.findings, result.files_checked
        shown = fixes.visible(findings, unsafe_fixes)
        if statistics:
            output = statistics_renderer(output_format)(shown)
        elif show_source and output_format == "text":
            color = output_file is None and _colour_wanted()
            output = text.render_with_source(shown, _source_lines(name, source), color)
        else:
            output = renderer(output_format)(shown)
        if fixed is not None and fixed.changes and source is not None:
            source = fixed.changes[0].after.encode(fixes.source_encoding(source))

    if fixed is None:
        _write_output(output, output_file)
        if not quiet:
            click.echo(_summary(findings, files_checked), err=True)
        ctx.exit(EXIT_FINDINGS if findings else EXIT_CLEAN)
    _report_fixes(ctx, fixed, output, diff, source if fix else None)


@contextlib.contextmanager
def _progress_shown(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """What to tell a run's progress to: a line on stderr that counts the files checked, when
    stderr is a terminal (not with --quiet) and the run takes more than a second."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from mplint.progress import ProgressLine

    line = ProgressLine(sys.stderr)

    def show(done: int, total: int) -> None:
        line.update(f"mplint: {done:,}/{total:,} files checked, {line.elapsed:.0f} s")

    try:
        yield show
    finally:
        line.close()


def _jobs(requested: int | None) -> int:
    """`-j N`, else one process per CPU."""
    return requested or os.cpu_count() or 1


def _write_output(output: str, output_file: str | None) -> None:
    if output_file is None:
        if output:
            click.echo(output)
        return
    try:
        with open(output_file, "w", encoding="utf-8") as stream:
            stream.write(output + "\n" if output else "")
    except OSError as error:
        _fail(f"cannot write {output_file}: {error.strerror or error}")


def _colour_wanted() -> bool:
    """Colour on a terminal only, and never when NO_COLOR is set (https://no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _source_lines(stdin_name: str, stdin_source: bytes | None) -> text.SourceLines:
    """Read a reported file's lines when `--show-source` first needs them (stdin's from memory)."""
    from mplint.run.discovery import decode_source, read_source

    cached: dict[str, Sequence[str] | None] = {}

    def lines(path: str) -> Sequence[str] | None:
        if path not in cached:
            if stdin_source is not None and path == stdin_name:
                file = decode_source(stdin_source, path)
            else:
                file = read_source(path, path)
            cached[path] = None if file.text is None else _split_lines(file.text)
        return cached[path]

    return lines


def _split_lines(source: str) -> list[str]:
    return [line.rstrip("\n") for line in io.StringIO(source, newline=None)]


def _add_noqa(ctx: click.Context, findings: Sequence[Finding], quiet: bool) -> None:
    """Silence `findings` with noqa comments; exit 2 when a file could not be changed."""
    from mplint.add_noqa import add_noqa

    outcome = add_noqa(findings)
    for notice in outcome.notices:
        click.echo(f"mplint: {notice}", err=True)
    if not quiet:
        click.echo(f"Added {_count(outcome.added, 'noqa directive')}.", err=True)
    raise click.exceptions.Exit(EXIT_ERROR if outcome.notices else EXIT_CLEAN)


def _report_fixes(ctx: click.Context, result: FixResult, output: str, diff: bool, stdin_source: bytes | None) -> None:
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
        sys.stdout.buffer.write(stdin_source)
    if output:
        click.echo(output, err=stdin_source is not None)
    remaining = len(result.findings)
    click.echo(f"Fixed {_count(result.fixed, 'finding')} ({remaining} remaining).", err=True)
    ctx.exit(EXIT_FINDINGS if result.findings else EXIT_CLEAN)


@main.command("rules")
def list_rules() -> None:
    """List the rules: code, name, autofix (safe, unsafe or -) and what each catches; then the
    codes only `mplint verify` reports."""
    with _errors_reported("loading the rules"):
        from mplint.registry import all_rules
        from mplint.runtime.codes import RUNTIME_CODES

        rows = [("CODE", "NAME", "FIX", "SUMMARY")] + [
            (rule.CODE, rule.NAME, rule.FIX.value if rule.FIX else "-", rule.summary()) for rule in all_rules()
        ]
        rows += [
            (code.code, code.name, "-", f"{code.summary()} (runtime only: mplint verify)")
            for code in RUNTIME_CODES.values()
        ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]  # the last column is not padded
        click.echo("  ".join([*cells, row[3]]))


@main.command()
@click.argument("rule")
def explain(rule: str) -> None:
    """Show the full documentation of RULE (a code such as MP001, or a rule name)."""
    with _errors_reported("loading the rules"):
        from mplint.registry import all_rules
        from mplint.runtime.codes import RUNTIME_CODES

        found = [(r.CODE, r.NAME, r.docs()) for r in all_rules() if rule.upper() == r.CODE or rule.lower() == r.NAME]
        found += [
            (c.code, c.name, c.docs) for c in RUNTIME_CODES.values() if rule.upper() == c.code or rule.lower() == c.name
        ]
    if not found:
        _fail(f"unknown rule '{rule}'; `mplint rules` lists them")
    code, name, docs = found[0]
    click.echo(f"{code} ({name})\n\n{docs}")


@main.command()
def server() -> None:
    """Run the language server (LSP over stdin/stdout) that editors start: diagnostics as you
    type, fixes and rule docs. Needs the server extra: pip install 'mplint[server]'."""
    try:
        from mplint.server.lsp import serve
    except ImportError as error:
        if error.name is None or error.name.split(".")[0] not in _SERVER_LIBRARIES:
            raise
        _fail(f"`mplint server` needs {error.name.split('.')[0]}: pip install 'mplint[server]'")
    serve()


# What `mplint server` imports beyond the linter's own dependencies (the `server` extra).
_SERVER_LIBRARIES = ("pygls", "lsprotocol", "cattrs")


main.add_command(verify)


@contextlib.contextmanager
def _errors_reported(activity: str) -> Iterator[None]:
    """Turn any exception into one line on stderr and exit 2: users never see a traceback."""
    try:
        yield
    except click.exceptions.Exit:
        raise
    except MplintError as error:
        _fail(str(error))
    except InternalError as error:  # the engine names the file it was checking
        _fail(f"internal error: {error}; please report this at {ISSUE_TRACKER}")
    except Exception as error:  # noqa: BLE001 - the last line of defence is the point
        _fail(
            f"internal error while {activity}: {type(error).__name__}: {error}; please report this at {ISSUE_TRACKER}"
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
