"""`--add-noqa`: silence every current finding with a `# noqa: CODE` comment, so a codebase can
adopt mplint and block only new problems.

The comment goes on the finding's line, merged into a `# noqa: ...` already there. A line that
ends inside a multi-line string or with a backslash continuation cannot take a comment; then it
goes on the first line of the statement, which suppression also reads. Running it twice adds
nothing the second time: the first run's comments silence what it saw.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mplint.findings import Finding
from mplint.fixes import FixRefused, write_fixed
from mplint.rules.mp000_invalid_syntax import InvalidSyntax
from mplint.run.discovery import read_source
from mplint.source import ParsedFile, parse
from mplint.suppression import _CODE, _NOQA
from mplint.text import SourceFile


@dataclass(frozen=True)
class NoqaResult:
    added: int  # codes added to noqa comments
    notices: tuple[str, ...]  # files that could not be changed, and why


def add_noqa(findings: Iterable[Finding]) -> NoqaResult:
    """Add the noqa comments that silence `findings` to their files (paths as reported, relative
    to the working directory) and write each changed file atomically."""
    by_path: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        if finding.code != InvalidSyntax.CODE:  # a file that does not parse reads no comments
            by_path[finding.path].append(finding)
    added, notices = 0, []
    for path, found in sorted(by_path.items()):
        source = read_source(Path(path), path)
        if source.text is None:
            notices.append(f"{path}: not changed: {source.error}")
            continue
        try:
            text, count = with_noqa(source, found)
        except (tokenize.TokenError, SyntaxError) as error:
            notices.append(f"{path}: not changed: cannot tokenize it: {error}")
            continue
        try:
            write_fixed(path, source.text, text)
        except FixRefused as refusal:
            notices.append(f"{path}: not changed: {refusal}")
        else:
            added += count
    return NoqaResult(added, tuple(notices))


def with_noqa(source: SourceFile, findings: Iterable[Finding]) -> tuple[str, int]:
    """`source`'s text with the codes of `findings` in noqa comments, and how many were added."""
    assert source.text is not None
    lines = io.StringIO(source.text, newline="").readlines()
    commentable, comments = _line_ends(source.text)
    statements: ParsedFile | None = None
    codes: dict[int, set[str]] = defaultdict(set)
    for finding in findings:
        line = finding.line
        if line not in commentable:
            if statements is None:
                tree = parse(source)
                if isinstance(tree, Finding):
                    raise SyntaxError(tree.message)
                statements = ParsedFile(source, tree)
            line = statements.statement_line(line)
        if line in commentable:
            codes[line].add(finding.code)
    added = 0
    for number, new in codes.items():
        lines[number - 1], count = _merged(lines[number - 1], comments.get(number), new)
        added += count
    return "".join(lines), added


def _line_ends(text: str) -> tuple[set[int], dict[int, int]]:
    """The lines that can take a comment, their end being outside strings and not a backslash
    continuation (where the tokenizer ends a line: NEWLINE, or NL inside brackets), and the
    column where each line's comment starts."""
    commentable, comments = set(), {}
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            commentable.add(token.start[0])
        elif token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.start[1]
    return commentable, comments


_LINE_END = re.compile(r"[\r\n]*$")


def _merged(line: str, comment_at: int | None, codes: set[str]) -> tuple[str, int]:
    """`line` with `codes` in its noqa comment (added when it has none)."""
    end = _LINE_END.search(line)
    assert end is not None
    body, newline = line[: end.start()], end.group()
    match = _NOQA.search(body, comment_at) if comment_at is not None else None
    if match is not None and match.group("codes"):
        present = {code.upper() for code in _CODE.findall(match.group("codes"))}
        merged = ", ".join(sorted(present | codes))
        body = body[: match.start("codes")] + merged + body[match.end("codes") :]
        return body + newline, len(codes - present)
    if match is not None:  # a bare noqa comment (no codes) already silences everything
        return line, 0
    return f"{body.rstrip()}  # noqa: {', '.join(sorted(codes))}{newline}", len(codes)
