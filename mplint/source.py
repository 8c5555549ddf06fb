"""A file of the run: its text, its tree from CPython's own parser, and positions as editors count them.

`ast` positions are 1-based lines and 0-based columns in UTF-8 bytes; findings and fixes use
1-based columns in characters (a tab or a non-ASCII character is one), which is what editors show.
Lines end where Python's tokenizer ends them: at `\\r\\n`, `\\r` or `\\n`, not at a form feed or U+2028.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional, Union

from mplint.findings import Finding, Severity
from mplint.rules.mp000_invalid_syntax import InvalidSyntax
from mplint.tree import Located

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

# The interpreter recurses once per nesting level of the code, and CPython's parser builds trees as
# deep as the code nests; Python's default limit (1000) stops both at a few hundred nested elifs or
# parentheses. 3.11 runs Python-to-Python calls without the C stack, and CPython's parser refuses
# what it cannot build at this limit (RecursionError, MemoryError) rather than crash: deeper is MP000.
DEEP_RECURSION = 6000
TOO_DEEP = "cannot analyse: nested too deeply"
GRAMMAR = f"Python {sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class SourceFile:
    path: str  # display path (relative to cwd when possible, posix slashes)
    text: Optional[str]  # decoded source; None when unreadable
    error: Optional[str] = None  # why `text` is None


def split_lines(text: str) -> list[str]:
    """The lines of `text` with their endings, split where Python's tokenizer ends a line."""
    return _LINE.findall(text)


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """At least `limit` for the block (never lowered: a caller may have raised it further)."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def parse(source: SourceFile) -> Union[ast.Module, Finding]:
    """The file's tree, or its MP000 finding when CPython's parser (this interpreter's grammar) refuses it."""
    assert source.text is not None
    try:
        with recursion_limit(DEEP_RECURSION), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings about the user's code are not ours to print
            return ast.parse(source.text, filename=source.path)
    except SyntaxError as error:
        if "nested" in str(error.msg) or "too complex" in str(error.msg):
            return invalid(source.path, 1, 1, TOO_DEEP)
        line = error.lineno or 1
        # CPython's offset counts characters of the line, 1-based, as findings do.
        return invalid(source.path, line, error.offset or 1, f"cannot parse: {error.msg} ({GRAMMAR} grammar)")
    except (RecursionError, MemoryError):
        return invalid(source.path, 1, 1, TOO_DEEP)
    except ValueError as error:  # source code that ast refuses outright
        return invalid(source.path, 1, 1, f"cannot parse: {error}")


def invalid(path: str, line: int, column: int, message: str) -> Finding:
    """An MP000 finding: the file (or this place of it) could not be checked."""
    line, column = max(line, 1), max(column, 1)
    return Finding(InvalidSyntax.CODE, InvalidSyntax.NAME, path, line, column, line, column, message, Severity.ERROR)


class ParsedFile:
    """One file's tree, with the line table that positions need computed on first use."""

    def __init__(self, source: SourceFile, module: ast.Module) -> None:
        assert source.text is not None
        self.source = source
        self.text: str = source.text
        self.module = module
        self._lines: Optional[list[str]] = None
        self._starts: Optional[list[int]] = None
        self._statements: Optional[list[tuple[int, int]]] = None

    @property
    def path(self) -> str:
        return self.source.path

    def lines(self) -> list[str]:
        if self._lines is None:
            self._lines = split_lines(self.text)
            starts = [0]
            for line in self._lines:
                starts.append(starts[-1] + len(line))
            self._starts = starts
        return self._lines

    def column(self, line: int, byte_offset: int) -> int:
        """The 0-based character column of a 0-based UTF-8 byte offset into `line` (1-based)."""
        lines = self.lines()
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        if text.isascii():
            return byte_offset
        return len(text.encode("utf-8", "surrogatepass")[:byte_offset].decode("utf-8", "ignore"))

    def position(self, node: Located) -> tuple[int, int, int, int]:
        """(line, column, end line, end column) of `node`: 1-based, columns in characters, end exclusive."""
        line, end_line = node.lineno, node.end_lineno or node.lineno  # type: ignore[attr-defined]
        end_offset = node.end_col_offset if node.end_col_offset is not None else node.col_offset  # type: ignore[attr-defined]
        return (
            line,
            self.column(line, node.col_offset) + 1,  # type: ignore[attr-defined]
            end_line,
            self.column(end_line, end_offset) + 1,
        )

    def offsets(self, node: Located) -> tuple[int, int]:
        """Where `node`'s text starts and ends, as character offsets into the file's text."""
        line, column, end_line, end_column = self.position(node)
        return self.offset(line, column), self.offset(end_line, end_column)

    def offset(self, line: int, column: int) -> int:
        """The character offset into the text of a 1-based line and column."""
        self.lines()
        assert self._starts is not None
        return self._starts[line - 1] + column - 1

    def location(self, offset: int) -> tuple[int, int]:
        """The 1-based (line, column) of a character offset into the text."""
        self.lines()
        assert self._starts is not None
        line = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        return line + 1, offset - self._starts[line] + 1

    def attribute_name(self, node: ast.Attribute) -> tuple[int, int]:
        """Where the name after the dot of `node` is (`ast` gives it no position of its own)."""
        end = self.offsets(node)[1]
        return end - len(node.attr), end

    def source_of(self, node: Located) -> str:
        """`node`'s text as written (its parentheses left out, as `ast` positions leave them)."""
        start, end = self.offsets(node)
        return self.text[start:end]

    def statement_line(self, line: int) -> int:
        """First line of the innermost statement (or compound statement header) covering `line`."""
        if self._statements is None:
            self._statements = sorted(
                (node.lineno, node.end_lineno or node.lineno) for node in ast.walk(self.module) if isinstance(node, ast.stmt)
            )
        covering = [(start, end) for start, end in self._statements if start <= line <= end]
        return min(covering, key=lambda span: span[1] - span[0])[0] if covering else line
