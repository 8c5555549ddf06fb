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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mplint.analysis.project import ModuleIndex, import_statements
from mplint.text import SourceFile

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
    return (
        not continued
        and bool(_STATEMENT_START.match(text, line_start, start))
        and bool(_STATEMENT_END.match(text, end))
    )


@dataclass(frozen=True)
class CodeFacts:
    """What the prefilter reads off one file's code: the rules' words it mentions, and the modules
    it imports (as `(leading dots, dotted name)`; only read where it mentions a word)."""

    words: frozenset[str] = frozenset()
    imports: tuple[tuple[int, str], ...] = ()


class Prefilter:
    """The files of one run, by the code facts of each (read once per file, or handed in by a
    cache that read them in an earlier run of the same text)."""

    def __init__(
        self, index: ModuleIndex, vocabulary: Iterable[str], known: Mapping[str, CodeFacts] | None = None
    ) -> None:
        self.index = index
        self.vocabulary = tuple(sorted(set(vocabulary)))
        self.known: dict[str, CodeFacts] = dict(known or {})
        self.computed: dict[str, CodeFacts] = {}  # path -> facts read in this run, for the cache

    def facts(self, source: SourceFile) -> CodeFacts:
        facts = self.known.get(source.path)
        if facts is None:
            facts = read_facts(source.text or "", self.vocabulary)
            self.known[source.path] = self.computed[source.path] = facts
        return facts

    def mentions(self, source: SourceFile, words: frozenset[str]) -> bool:
        """Whether the code of `source` mentions one of `words`."""
        return not self.facts(source).words.isdisjoint(words)

    def roots(
        self, files: list[SourceFile], triggers: frozenset[str], sinks: frozenset[str], leading: set[str]
    ) -> set[str]:
        """Files whose code mentions a trigger word, and files that mention a sink word and import one
        of those, directly or through one file between (a caller whose calls carry low precision
        across files: `distill.py` -> `load_model_and_tokenizer` in `ch03.py` -> `qwen3.py`'s bf16);
        and scripts (`__main__`) that mention neither but import such a file and are `leading` to a
        sink (`leading_to(files, sinks)`; atropos's `grpo.py`: its options' bf16 default in `cli.py`,
        its optimizer in `trainers.py`): the configuration that runs starts there."""
        selected = {source.path for source in files if self.mentions(source, triggers)}
        carriers = selected | {source.path for source in files if self._imported_paths(source) & selected}
        callers = {
            source.path
            for source in files
            if source.path not in selected and self.mentions(source, sinks) and self._imported_paths(source) & carriers
        }
        scripts = {
            source.path
            for source in files
            if source.path not in selected
            and source.path in leading
            and "__main__" in (source.text or "")
            and self._imported_paths(source) & carriers
        }
        return selected | callers | scripts

    def leading_to(self, files: list[SourceFile], words: frozenset[str]) -> set[str]:
        """Files whose code mentions one of `words`, or imports a file that does, directly or through
        one file between (a package's `__init__.py` re-exporting the trainer module that does)."""
        mentioning = {source.path for source in files if self.mentions(source, words)}
        importers = {source.path for source in files if self._imported_paths(source) & mentioning}
        reached = mentioning | importers
        return reached | {source.path for source in files if self._imported_paths(source) & reached}

    def importers(self, files: list[SourceFile], targets: set[str]) -> set[str]:
        """Those of `files` that import one of `targets`, directly or through others of `files`."""
        found: set[str] = set()
        reached = set(targets)
        while reached:
            reached = {
                source.path
                for source in files
                if source.path not in found and source.path not in targets and self._imported_paths(source) & reached
            }
            found |= reached
        return found

    def _imported_paths(self, source: SourceFile) -> set[str]:
        found: set[str] = set()
        for dots, module in self.facts(source).imports:
            path = self.index.resolve(module, source.path, dots)
            if path is not None:
                found.add(path)
        return found


def read_facts(text: str, vocabulary: Sequence[str]) -> CodeFacts:
    """The code facts of `text`, for the words of `vocabulary`."""
    present = [word for word in vocabulary if word in text]
    if not present:
        # Most files mention no word: their imports are read off the raw text (no need to tell
        # code from comments for that), for the files that only carry a model between others.
        return CodeFacts(imports=_imports(text)) if "import" in text else CodeFacts()
    code = code_text(text)
    words = frozenset(word for word in present if word in code)
    return CodeFacts(words, _imports(code))


def _imports(code: str) -> tuple[tuple[int, str], ...]:
    return tuple((level, module) for level, module, _ in import_statements(code))
