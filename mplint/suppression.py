"""`noqa` comments: which lines silence which codes (the flake8/ruff convention)."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Mapping

# Matches `noqa`, `NOQA`, `noqa: MP001,MP002` and `noqa:MP001 MP002` after a `#`;
# anything after the codes is prose. `noqa-ish` or `noqaX` is not a directive.
_NOQA = re.compile(
    r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*)|(?=[\s:#]|$))",
    re.IGNORECASE,
)
_CODE = re.compile(r"[A-Z]+[0-9]+", re.IGNORECASE)

# 1-based line -> the codes it silences; None means a bare `noqa`, which silences every code.
Directives = Mapping[int, frozenset[str] | None]


def noqa_directives(source: str) -> dict[int, frozenset[str] | None]:
    """Every `# noqa` comment in `source`, by line. Never raises, whatever the input."""
    if "noqa" not in source.lower():
        return {}  # most files: skip tokenizing
    try:
        comments = _comments_from_tokens(source)
    except (tokenize.TokenError, SyntaxError, ValueError):
        # Unterminated strings or brackets: read comments line by line instead (a `noqa`
        # inside a string may then count, which only ever silences, never invents, findings).
        comments = _comments_from_lines(source)
    directives: dict[int, frozenset[str] | None] = {}
    for line, comment in comments:
        match = _NOQA.search(comment)
        if match is None:
            continue
        codes = match.group("codes")
        directives[line] = frozenset(code.upper() for code in _CODE.findall(codes)) if codes else None
    return directives


def is_suppressed(code: str, lines: Iterable[int], directives: Directives) -> bool:
    """Whether a `# noqa` on any of `lines` silences `code`."""
    for line in lines:
        if line not in directives:
            continue
        codes = directives[line]
        if codes is None or code.upper() in codes:
            return True
    return False


def _comments_from_tokens(source: str) -> list[tuple[int, str]]:
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return [(token.start[0], token.string) for token in tokens if token.type == tokenize.COMMENT]


def _comments_from_lines(source: str) -> list[tuple[int, str]]:
    return [
        (number, line[line.index("#") :]) for number, line in enumerate(source.splitlines(), start=1) if "#" in line
    ]
