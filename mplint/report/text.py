"""One line per finding, `path:line:column: CODE [name] message`, the format editors parse;
optionally with the offending source line and a caret under it (`--show-source`), or as counts
per rule (`--statistics`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import click

from mplint.findings import Finding, counts_by_rule

# The lines of the file at a path (without line endings), or None when it cannot be read.
SourceLines = Callable[[str], Sequence[str] | None]


def render(findings: Sequence[Finding]) -> str:
    return "\n".join(_line(finding) for finding in findings)


def render_with_source(findings: Sequence[Finding], source_lines: SourceLines, color: bool) -> str:
    """Each finding's line, then its source line with carets under the reported span, ruff
    style:

        train.py:4:8: MP001 [log-softmax-low-precision] log_softmax of a bf16 value ...
          |
        4 | logp = F.log_softmax(model(x), dim=-1)
          |        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ MP001
          |
    """
    blocks = []
    for finding in findings:
        header = _line(finding, color)
        lines = source_lines(finding.path)
        if lines is None or not 1 <= finding.line <= len(lines):
            blocks.append(header)
            continue
        blocks.append(header + "\n" + _snippet(finding, lines[finding.line - 1], color))
    return "\n\n".join(blocks)


def statistics(findings: Sequence[Finding]) -> str:
    """`count  CODE  [name]` per rule, most frequent first; `[*]` when some have a fix."""
    counts = counts_by_rule(findings)
    width = len(str(max((row.count for row in counts), default=0)))
    return "\n".join(f"{row.count:>{width}}  {row.code}  {'[*] ' if row.fixable else ''}[{row.name}]" for row in counts)


def _snippet(finding: Finding, text: str, color: bool) -> str:
    number = str(finding.line)
    gutter = " " * len(number) + " |"
    start = min(finding.column - 1, len(text))
    end = finding.end_column - 1 if finding.end_line == finding.line else len(text)
    # Keep tabs under tabs, so the carets line up however wide the terminal draws a tab.
    indent = "".join(character if character == "\t" else " " for character in text[:start])
    carets = _style("^" * max(1, end - start), color, fg="red", bold=True)
    code = _style(finding.code, color, fg="red", bold=True)
    return f"{gutter}\n{number} | {text}\n{gutter} {indent}{carets} {code}\n{gutter}"


def _line(finding: Finding, color: bool = False) -> str:
    location = _style(f"{finding.path}:{finding.line}:{finding.column}:", color, bold=True)
    code = _style(finding.code, color, fg="red", bold=True)
    line = f"{location} {code} [{finding.name}] {finding.message}"
    if finding.related:
        routes = len(finding.related)
        line += f" (and {routes} other route{'s' if routes > 1 else ''}: see --format json)"
    if finding.fix is not None:
        line += " [*]"
    if finding.verdict is not None:
        line += f" [{finding.verdict_note()}]"
    return line


def _style(text: str, color: bool, *, fg: str | None = None, bold: bool | None = None) -> str:
    return click.style(text, fg=fg, bold=bold) if color else text
