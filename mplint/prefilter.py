"""The cheap text prefilter: which files a rule could fire in, from the words their code mentions.

A rule names the words (`Rule.TRIGGERS`, `Rule.SINKS`) of which a file's code must contain one for
the rule to possibly fire there. Only code counts: a comment, a docstring or any other string
that stands alone as a statement runs nothing, so `# fp16 is faster` or a docstring about
`bfloat16` does not make a file worth analysing. Other strings do count (`dtype="float16"`).
The text is scanned with one regular expression, not tokenized: strings and comments are told
apart as Python's tokenizer would, but malformed text is never an error (such a file is MP000).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mplint.precision.project import ModuleIndex
from mplint.source import SourceFile

# A comment, or a string (long or short, single or double quoted; escapes skipped). Unrolled loops
# and no groups: every alternative then starts with a literal, which lets `re` skip ahead to the
# next `#`, `'` or `"` (4x faster than the grouped form on torch/).
_STRING_OR_COMMENT = re.compile(
    r"""\#[^\r\n]*"""
    r"""|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''|\"\"\"[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*\"\"\""""
    r"""|'[^'\\\r\n]*(?:\\(?:\r\n|.)[^'\\\r\n]*)*'|"[^"\\\r\n]*(?:\\(?:\r\n|.)[^"\\\r\n]*)*\"""",
    re.DOTALL,
)
# Before a string that starts a statement: indentation and a string prefix (`r`, `b`, `rb`, `f`...).
_STATEMENT_START = re.compile(r"[ \t\f]*[rRbBuUfF]{0,2}\Z")
# After a string that ends one: spaces and a comment up to the end of the line.
_STATEMENT_END = re.compile(r"[ \t\f]*(?:\#[^\r\n]*)?(?:\r\n|\r|\n|\Z)")
_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import|import[ \t]+([\w.]+))", re.MULTILINE)


def code_text(text: str) -> str:
    """`text` without its comments and its string statements (docstrings among them)."""
    pieces: list[str] = []
    position = depth = 0  # depth: open brackets, outside strings and comments
    for match in _STRING_OR_COMMENT.finditer(text):
        start, end = match.span()
        code = text[position:start]
        depth += code.count("(") + code.count("[") + code.count("{")
        depth -= code.count(")") + code.count("]") + code.count("}")
        pieces.append(code)
        position = end
        if text[start] == "#" or (depth <= 0 and _is_statement(text, start, end)):
            pieces.append(" ")
        else:
            pieces.append(match.group())
    pieces.append(text[position:])
    return "".join(pieces)


def _is_statement(text: str, start: int, end: int) -> bool:
    """Whether the string at `start:end` (outside brackets) is a whole logical line of its own."""
    line_start = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    newline = 2 if text.startswith("\r\n", line_start - 2) else 1
    continued = line_start - newline - 1 >= 0 and text[line_start - newline - 1] == "\\"
    return not continued and bool(_STATEMENT_START.match(text, line_start, start)) and bool(_STATEMENT_END.match(text, end))


class Prefilter:
    """The files of one run, by which of the rules' words their code mentions (found once per file)."""

    def __init__(self, index: ModuleIndex, vocabulary: Iterable[str]) -> None:
        self.index = index
        self.vocabulary = tuple(sorted(set(vocabulary)))
        self._words: dict[str, frozenset[str]] = {}
        self._code: dict[str, str] = {}

    def words(self, source: SourceFile) -> frozenset[str]:
        """The words of the vocabulary that the code of `source` mentions."""
        if source.path not in self._words:
            text = source.text or ""
            present = [word for word in self.vocabulary if word in text]
            if present:  # most files mention none: no need to tell their code from their comments
                code = self.code_of(source)
                present = [word for word in present if word in code]
            self._words[source.path] = frozenset(present)
        return self._words[source.path]

    def mentions(self, source: SourceFile, words: frozenset[str]) -> bool:
        return not self.words(source).isdisjoint(words)

    def code_of(self, source: SourceFile) -> str:
        if source.path not in self._code:
            self._code[source.path] = code_text(source.text or "")
        return self._code[source.path]

    def roots(self, files: list[SourceFile], triggers: frozenset[str], sinks: frozenset[str]) -> set[str]:
        """Files whose code mentions a trigger word, and files that import one of those directly and
        mention a sink word (a caller whose calls carry low precision across files)."""
        selected = {source.path for source in files if self.mentions(source, triggers)}
        callers = {
            source.path
            for source in files
            if source.path not in selected and self.mentions(source, sinks) and self._imported_paths(source) & selected
        }
        return selected | callers

    def _imported_paths(self, source: SourceFile) -> set[str]:
        found: set[str] = set()
        for dots, from_module, plain_module in _IMPORT.findall(self.code_of(source)):
            path = self.index.resolve(from_module or plain_module, source.path, len(dots))
            if path is not None:
                found.add(path)
        return found
