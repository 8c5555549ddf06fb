"""Which top-level functions and classes of the run may lead to a rule's word, told from CPython's
`ast` without building a libcst tree.

A function nobody calls is analysed on its own only when it may report (`Interpreter.may_report`):
it mentions a rule's word, or calls code that may. For a callee imported from another file that
question used to be answered "yes" unread, which made nearly every function of a library worth a
standalone run (torch/: 83% of the text of its units). Here the callee is looked up where it is
defined (re-exports followed) and judged the same way: its code mentions a word, or it calls by
name a function of its file or an import that does. One table per run and process, shared by
every unit, filled as callees are asked for.
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

from mplint.analysis.project import ModuleIndex
from mplint.run.prefilter import code_text
from mplint.text import split_lines

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# A name called (`f(`, not `.f(`), read off the code's text: a walk of CPython's tree for its calls
# cost more than the rest of the table. A string that looks like a call only adds a callee to judge.
_CALLED = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\s*\(")


@dataclass(frozen=True)
class _Definition:
    mentions_word: bool
    callees: frozenset[str]  # names it may call (`f(...)`), as written


@dataclass(frozen=True)
class _FileNames:
    """What one file's top level binds: definitions, names imported from files of the run, and
    names bound any other way (an assignment: not judged, so worth following)."""

    definitions: dict[str, _Definition]
    imports: dict[str, tuple[str, str]]  # local name -> (file, name there)
    other: frozenset[str]


class Reach:
    """`may_reach(path, name)`: whether calling top-level `name` of the file at `path` may run code
    that mentions one of `words`. As `Interpreter.may_report` reads them, a word written as a method
    call (`.step(`) is any identifier of that name, any other word a fragment of the code; a
    definition this table judges worth nothing, the interpreter never does (the engine leaves such
    definitions of a root unparsed unless a name is looked up)."""

    def __init__(self, index: ModuleIndex, words: Iterable[str]) -> None:
        self._index = index
        unique = sorted(set(words))
        self._fragments = tuple(word for word in unique if not (word.startswith(".") and word.endswith("(")))
        methods = [word[1:-1] for word in unique if word not in self._fragments]
        alternatives = "|".join(map(re.escape, methods))
        self._methods = re.compile(rf"\b(?:{alternatives})\b") if methods else None
        self._files: dict[str, _FileNames | None] = {}
        # Per (file, name): the verdict, and the files it was read from (what a cached unit depends on).
        self._verdicts: dict[tuple[str, str], tuple[bool, frozenset[str]]] = {}

    def may_reach(self, path: str, name: str) -> bool:
        return self.judged(path, name)[0]

    def judged(self, path: str, name: str) -> tuple[bool, frozenset[str]]:
        """`may_reach`'s verdict, with the files it read to tell."""
        key = (path, name)
        found = self._verdicts.get(key)
        if found is None:
            # A recursive call does not make a function worth it.
            self._verdicts[key] = (False, frozenset({path}))
            found = self._verdicts[key] = self._judge(path, name)
        return found

    def _judge(self, path: str, name: str) -> tuple[bool, frozenset[str]]:
        names = self._names(path)
        read = frozenset({path})
        if names is None or name in names.other:
            return True, read  # unread, or bound by code this table does not judge: follow it
        if name in names.imports:
            verdict, further = self.judged(*names.imports[name])
            return verdict, read | further
        definition = names.definitions.get(name)
        if definition is None:
            # Not bound at its top level: a submodule (`from pkg import utils`), or a star import.
            return True, read
        if definition.mentions_word:
            return True, read
        for callee in sorted(definition.callees):
            if callee in names.definitions or callee in names.imports or callee in names.other:
                verdict, further = self.judged(path, callee)
                read |= further
                if verdict:
                    return True, read
        return False, read

    def _names(self, path: str) -> _FileNames | None:
        if path not in self._files:
            self._files[path] = self._read(path)
        return self._files[path]

    def learn(self, path: str, module: ast.Module) -> None:
        """Judge the file at `path` from a tree its caller parsed anyway (not parsing it again)."""
        if path not in self._files:
            text = self._index.text(path)
            self._files[path] = self._summary(path, module, text) if text is not None else None

    def _read(self, path: str) -> _FileNames | None:
        text = self._index.text(path)
        if text is None:
            return None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        return self._summary(path, module, text)

    def _summary(self, path: str, module: ast.Module, text: str) -> _FileNames:
        lines = split_lines(text)
        definitions: dict[str, _Definition] = {}
        imports: dict[str, tuple[str, str]] = {}
        other: set[str] = set()
        for statement in module.body:
            if isinstance(statement, _DEFINITIONS):
                first = min([statement.lineno, *(item.lineno for item in statement.decorator_list)])
                code = code_text("".join(lines[first - 1 : statement.end_lineno]))
                definitions[statement.name] = _Definition(self._mentions_word(code), frozenset(_CALLED.findall(code)))
            elif isinstance(statement, ast.ImportFrom) and (statement.module or statement.level):
                source = self._index.resolve(statement.module or "", path, statement.level)
                for alias in statement.names:
                    if source is not None and alias.name != "*":
                        imports[alias.asname or alias.name] = (source, alias.name)
            else:
                other.update(_bound_names(statement))
        # A name bound twice (a def in one branch of a try, an import in the other) is not judged.
        conflicting = (definitions.keys() & imports.keys()) | (other & (definitions.keys() | imports.keys()))
        return _FileNames(definitions, imports, frozenset(other | conflicting))

    def _mentions_word(self, code: str) -> bool:
        return any(word in code for word in self._fragments) or bool(self._methods and self._methods.search(code))


def _bound_names(statement: ast.stmt) -> set[str]:
    """Names a top-level statement other than a def, class or `from` import may bind."""
    found: set[str] = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.add(node.id)
        elif isinstance(node, _DEFINITIONS):
            found.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return found
