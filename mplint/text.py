"""A file as a run holds it: its display path and decoded text, or why it has none.

Kept apart from `mplint.source` (which parses with libcst) so that what only lists, reads or
reports files (discovery, the cache, reporters) never imports libcst: a warm run whose results
are all cached does not pay libcst's import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lines end where Python's tokenizer ends them: at `\r\n`, `\r` or `\n`, not at a form feed or U+2028.
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class SourceFile:
    path: str  # display path (relative to cwd when possible, posix slashes)
    text: str | None  # decoded source; None when unreadable
    error: str | None = None  # why `text` is None


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their endings, split where Python's tokenizer ends a line."""
    return _LINE.findall(text)
