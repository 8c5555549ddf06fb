"""Findings, fixes and rule documentation in the Language Server Protocol's shapes.

Findings count lines and columns from 1, columns in characters; LSP counts both from 0, and
columns in the units the client and server agreed on (UTF-16 unless the client offers another),
so every range goes through the client's position codec with the text it was found in.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from lsprotocol import types
from pygls.workspace.position_codec import PositionCodec

from mplint.findings import Applicability, Edit, Finding, Fix, Severity
from mplint.registry import all_rules, rule_by_code
from mplint.run.cache import DIRECTORY, prepare_directory
from mplint.text import split_lines

SOURCE = "mplint"
FIX_ALL_COMMAND = "mplint.fixAll"
FIX_ALL_KIND = f"{types.CodeActionKind.SourceFixAll.value}.{SOURCE}"
_SEVERITIES = {Severity.ERROR: types.DiagnosticSeverity.Error, Severity.WARNING: types.DiagnosticSeverity.Warning}


class Text:
    """A document's text as a run saw it, to place its findings for the client."""

    def __init__(self, text: str, codec: PositionCodec) -> None:
        self.lines = split_lines(text) or [""]  # lines end where LSP ends them: \r\n, \r or \n
        self.codec = codec

    def range(self, line: int, column: int, end_line: int, end_column: int) -> types.Range:
        """A 1-based, character-counted span as the client counts it."""
        found = types.Range(types.Position(line - 1, column - 1), types.Position(end_line - 1, end_column - 1))
        return self.codec.range_to_client_units(self.lines, found)

    def of(self, finding: Finding) -> types.Range:
        return self.range(finding.line, finding.column, finding.end_line, finding.end_column)

    def edits(self, fix: Fix) -> list[types.TextEdit]:
        return [self._edit(edit) for edit in fix.edits]

    def _edit(self, edit: Edit) -> types.TextEdit:
        return types.TextEdit(self.range(edit.line, edit.column, edit.end_line, edit.end_column), edit.replacement)

    def replaced_by(self, after: str) -> types.TextEdit:
        """One edit that turns this text into `after`: the span between what they share at both
        ends, so the editor keeps the cursor and folds outside it."""
        before = "".join(self.lines)
        start = len(os.path.commonprefix([before, after]))
        shared_end = len(os.path.commonprefix([before[start:][::-1], after[start:][::-1]]))
        end, new_end = len(before) - shared_end, len(after) - shared_end
        return types.TextEdit(self._span(start, end), after[start:new_end])

    def _span(self, start: int, end: int) -> types.Range:
        return self.range(*self._line_column(start), *self._line_column(end))

    def _line_column(self, offset: int) -> tuple[int, int]:
        for number, line in enumerate(self.lines, start=1):
            if offset <= len(line) and (offset < len(line) or number == len(self.lines)):
                return number, offset + 1
            offset -= len(line)
        return len(self.lines), len(self.lines[-1]) + 1


def diagnostic(finding: Finding, text: Text, uri: str, docs: dict[str, str]) -> types.Diagnostic:
    """The finding as the editor shows it: code, `[rule-name] message`, a link to the rule's
    documentation, and each other route to the same place as related information."""
    place = text.of(finding)
    href = docs.get(finding.code)
    return types.Diagnostic(
        range=place,
        message=f"[{finding.name}] {finding.message}",
        severity=_SEVERITIES[finding.severity],
        code=finding.code,
        code_description=types.CodeDescription(href=href) if href else None,
        source=SOURCE,
        # A finding names its other routes (another caller, another origin) in words, at its own
        # place: `Finding.related` holds no locations of its own yet.
        related_information=[
            types.DiagnosticRelatedInformation(types.Location(uri, place), message) for message in finding.related
        ]
        or None,
        data={"name": finding.name, "fix": finding.fix.applicability.value if finding.fix else None},
    )


def fix_action(finding: Finding, fix: Fix, text: Text, uri: str, diagnostic: types.Diagnostic) -> types.CodeAction:
    unsafe = fix.applicability is Applicability.UNSAFE
    return types.CodeAction(
        title=f"{fix.description[:1].upper()}{fix.description[1:]} ({finding.code}{', unsafe' if unsafe else ''})",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        is_preferred=not unsafe,
        edit=types.WorkspaceEdit(changes={uri: text.edits(fix)}),
    )


def noqa_action(finding: Finding, edit: types.TextEdit, uri: str, diagnostic: types.Diagnostic) -> types.CodeAction:
    return types.CodeAction(
        title=f"Add `# noqa: {finding.code}` (silence this finding)",
        kind=types.CodeActionKind.QuickFix,
        diagnostics=[diagnostic],
        edit=types.WorkspaceEdit(changes={uri: [edit]}),
    )


def fix_all_action(uri: str, edit: types.TextEdit | None = None) -> types.CodeAction:
    """ "Fix all" with its edit when it is computed already, else as the command that computes it."""
    title = "Fix all safe mplint fixes in this file"
    if edit is not None:
        return types.CodeAction(title, kind=FIX_ALL_KIND, edit=types.WorkspaceEdit(changes={uri: [edit]}))
    return types.CodeAction(title, kind=FIX_ALL_KIND, command=types.Command(title, FIX_ALL_COMMAND, arguments=[uri]))


def hover(findings: Sequence[Finding], text: Text) -> types.Hover | None:
    """The documentation of the rules of `findings` (those under the cursor)."""
    codes = dict.fromkeys(finding.code for finding in findings)
    sections = [_rule_docs(code) for code in codes]
    if not sections:
        return None
    return types.Hover(
        types.MarkupContent(types.MarkupKind.Markdown, "\n\n---\n\n".join(sections)), range=text.of(findings[0])
    )


def _rule_docs(code: str) -> str:
    rule = rule_by_code(code)
    return f"### {code} `{rule.NAME}`\n\n{rule.docs()}" if rule is not None else code


def write_rule_docs(root: Path) -> dict[str, str]:
    """Each rule's documentation (what `mplint explain` prints) as a Markdown file under the
    project's cache directory, by code: the link of a diagnostic's code. Written once per version
    of the text; {} where the directory cannot be written (diagnostics then carry no link)."""
    directory = root / DIRECTORY / "rules"
    links = {}
    with contextlib.suppress(OSError):
        prepare_directory(root / DIRECTORY)
        directory.mkdir(exist_ok=True)
        for rule in all_rules():
            page = directory / f"{rule.CODE}.md"
            text = _rule_docs(rule.CODE) + "\n"
            if not page.is_file() or page.read_text(encoding="utf-8") != text:
                page.write_text(text, encoding="utf-8")
            links[rule.CODE] = page.resolve().as_uri()
    return links
