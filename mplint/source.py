"""A file of the run: its text, its libcst tree, and positions as editors count them.

CPython's parser screens every file first (it is ~15x faster than libcst's): what it refuses for
nesting (too many parentheses or indentation levels, recursion) never reaches libcst, whose native
parser crashes or takes minutes on such input. Anything else CPython refuses is handed to libcst,
which decides: syntax newer than the running interpreter (PEP 695, PEP 701) is analysed.

Positions are libcst's (`mplint.positions`), computed for a piece of a file only when a finding, a
fix or a message needs one (most analysed files never do). Findings and fixes use 1-based lines and
1-based columns in characters (a tab or a non-ASCII character is one), which is what editors show.
Lines end where Python's tokenizer ends them: at `\\r\\n`, `\\r` or `\\n`, not at a form feed or U+2028.
"""

from __future__ import annotations

import ast
import bisect
import contextlib
import functools
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

import libcst as cst
from libcst._nodes.base import CSTNode

from mplint.findings import Finding, Severity
from mplint.retained import Key, T, current_store
from mplint.rules.mp000_invalid_syntax import InvalidSyntax
from mplint.text import SourceFile, split_lines
from mplint.tree import DECORATED_CLASSES, FROM_IMPORTS, STAR_IMPORT, Located, Statement, children, statements, walk

if TYPE_CHECKING:
    from mplint.analysis.interpreter import TreeMemo
    from mplint.positions import Range  # imported when positions are first needed (it imports libcst.metadata)


# The interpreter recurses once per nesting level of the code, and CPython's parser builds trees as
# deep as the code nests; Python's default limit (1000) stops both at a few hundred nested elifs or
# parentheses. 3.11 runs Python-to-Python calls without the C stack, and CPython's parser refuses
# what it cannot build at this limit (RecursionError, MemoryError) rather than crash: deeper is MP000.
DEEP_RECURSION = 6000
TOO_DEEP = "cannot analyse: nested too deeply"
# CPython builds trees through this many levels of recursion for the screen. libcst's parser is
# superlinear in how deep an expression nests (a chain of 2,000 calls takes it 6 s, 8,000 crash it)
# while CPython refuses such chains at this depth; sums of a few thousand terms and real code pass.
SCREEN_DEPTH = 1000
# What CPython refuses in every Python 3 grammar while libcst's parser accepts it (`except E, e:`).
_INVALID_IN_EVERY_GRAMMAR = ("multiple exception types must be parenthesized",)


@contextlib.contextmanager
def recursion_limit(limit: int) -> Iterator[None]:
    """At least `limit` for the block (never lowered: a caller may have raised it further)."""
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


@contextlib.contextmanager
def recursion_headroom(depth: int) -> Iterator[None]:
    """Exactly `depth` more levels than the caller's stack for the block, wherever it is called from."""
    previous = sys.getrecursionlimit()
    frame: FrameType | None = sys._getframe()
    used = 0
    while frame is not None:
        frame, used = frame.f_back, used + 1
    sys.setrecursionlimit(used + depth)
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


@contextlib.contextmanager
def _unvalidated_nodes() -> Iterator[None]:
    """libcst validates every node its parser builds (`CSTNode.__post_init__` -> `_validate`), a
    check meant for trees built by hand: what the parser builds is valid by construction. Skipping
    it while parsing saves ~13% of libcst's parse time (torch/nn: 1.41 s -> 1.22 s). Where a libcst
    release no longer has that hook, parsing is simply validated as before."""
    hook = getattr(CSTNode, "__post_init__", None)
    if hook is None:
        yield
        return
    # The ignores: replacing a method on the class is the point, which mypy rejects as such.
    CSTNode.__post_init__ = _no_validation  # type: ignore[method-assign]
    try:
        yield
    finally:
        CSTNode.__post_init__ = hook  # type: ignore[method-assign]


def _no_validation(self: CSTNode) -> None:  # named as the method it stands in for
    return None


def parse(source: SourceFile) -> cst.Module | Finding:
    """The file's libcst tree, or its MP000 finding when it cannot be analysed."""
    assert source.text is not None
    refused = screen(source)
    if refused is not None and (refused.message == TOO_DEEP or refused.message.endswith(_INVALID_IN_EVERY_GRAMMAR)):
        return refused
    try:
        with recursion_limit(DEEP_RECURSION), _unvalidated_nodes():
            return cst.parse_module(source.text)
    except cst.ParserSyntaxError as error:
        # CPython's words and position where both refuse (libcst's native parser reports the line after).
        return refused or invalid(source.path, error.raw_line, error.raw_column + 1, f"cannot parse: {error.message}")
    except (RecursionError, MemoryError):
        return invalid(source.path, 1, 1, TOO_DEEP)
    except Exception as error:  # libcst refuses some inputs with plain exceptions (null bytes, encodings)
        return refused or invalid(source.path, 1, 1, f"cannot parse: {error}")


def syntax_error(source: SourceFile) -> Finding | None:
    """MP000 for a file no rule needs to analyse, without building its libcst tree unless CPython
    refuses it (then libcst decides, as for analysed files)."""
    refused = screen(source)
    if refused is None or refused.message == TOO_DEEP or refused.message.endswith(_INVALID_IN_EVERY_GRAMMAR):
        return refused
    parsed = parse(source)
    return parsed if isinstance(parsed, Finding) else None


def screen(source: SourceFile) -> Finding | None:
    """The MP000 finding of CPython's parser (this interpreter's grammar) for the file, if it refuses it."""
    assert source.text is not None
    try:
        with recursion_headroom(SCREEN_DEPTH), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings about the user's code are not ours to print
            ast.parse(source.text, filename=source.path)
        return None
    except SyntaxError as error:
        if "nested" in str(error.msg) or "too complex" in str(error.msg) or "indentation levels" in str(error.msg):
            return invalid(source.path, 1, 1, TOO_DEEP)
        line = error.lineno or 1
        # CPython's offset counts characters of the line, 1-based, as findings do.
        return invalid(source.path, line, error.offset or 1, f"cannot parse: {error.msg}")
    except (RecursionError, MemoryError):
        return invalid(source.path, 1, 1, TOO_DEEP)
    except ValueError as error:  # source code that CPython refuses outright (null bytes)
        return invalid(source.path, 1, 1, f"cannot parse: {error}")


def invalid(path: str, line: int, column: int, message: str) -> Finding:
    """An MP000 finding: the file (or this place of it) could not be checked."""
    line, column = max(line, 1), max(column, 1)
    return Finding(InvalidSyntax.CODE, InvalidSyntax.NAME, path, line, column, line, column, message, Severity.ERROR)


# How deep a tree libcst's position pass may walk (a few thousand elifs crash it; real code nests
# a few dozen levels, generated dispatch code a few hundred).
MAX_POSITION_DEPTH = 1000


def _depth(module: cst.Module) -> int:
    """How many levels the tree nests (an elif is one level below its `if`)."""
    deepest = 0
    stack: list[tuple[cst.CSTNode, int]] = [(module, 0)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children(node))
    return deepest


class ParsedFile:
    """One file's libcst tree, in pieces: a whole file is one piece; a file a unit only imports names
    from is parsed top-level statement by top-level statement as they are needed (`PartialFile`).
    Line tables, node positions and source order are computed per piece on first use."""

    def __init__(self, source: SourceFile, module: cst.Module) -> None:
        assert source.text is not None
        self.source = source
        self.text: str = source.text
        self.module = module
        # (first line of the piece in the file, its tree), in order of lines.
        self.pieces: list[tuple[int, cst.Module]] = [(1, module)]
        self._lines: list[str] | None = None
        self._starts: list[int] | None = None
        self._positions: dict[int, dict[int, Range]] = {}  # by piece, then by node id
        self._order: dict[cst.CSTNode, tuple[int, int]] = {}
        self._ordered: set[int] = set()  # pieces numbered in `_order`
        self._statements: dict[int, list[tuple[int, int]]] = {}  # (first, last line) of each statement, by piece
        # What the analysis computed from nodes of this tree alone, by (function, node): kept
        # with the tree, so every unit of the process that reads the file reuses it.
        self.memo: TreeMemo = {}
        # The key each piece a `RetainedTrees` store holds has there, by the piece's first line.
        self._kept_as: dict[int, Key] = {}
        # Pieces parsed under `_WRAPPER` (a method alone), by first line: their lines count from the line above.
        self._wrapped: set[int] = set()

    partial = False

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

    def source_order(self) -> dict[cst.CSTNode, tuple[int, int]]:
        """The file's calls and arithmetic operators numbered in source order, parents first: one
        walk per piece and process, however many units visit it (positions are not needed for it)."""
        for first, piece in self.pieces:
            if first not in self._ordered:
                self._ordered.add(first)
                nodes = self._derived("evaluable", first, functools.partial(_evaluable, piece))
                self._order.update({node: (first, index) for index, node in enumerate(nodes)})
        return self._order

    def _derived(self, kind: str, first: int, compute: Callable[[], T]) -> T:
        """What `compute` derives from the piece at line `first` alone: kept with the piece when a
        `RetainedTrees` store keeps it, so that later runs over the same text reuse it."""
        store, key = current_store(), self._kept_as.get(first)
        return store.derived(kind, key, compute) if store and key else compute()

    def _ranges(self, first: int, piece: cst.Module) -> dict[int, Range]:
        """Every node's range in one piece, by node id: one code generation pass over it, done the
        first time a position in it is asked for."""
        if first not in self._positions:
            self._positions[first] = self._derived("positions", first, functools.partial(_positions, piece, self.path))
        return self._positions[first]

    def position(self, node: Located) -> tuple[int, int, int, int]:
        """(line, column, end line, end column) of `node`: 1-based, columns in characters, end exclusive."""
        for first, piece in self.pieces:
            found = self._ranges(first, piece).get(id(node))
            if found is not None:
                line, column, end_line, end_column = found
                # A piece's lines count from its own first line (a wrapped method's, from the line above).
                shift = first - 1 - (first in self._wrapped)
                return line + shift, column + 1, end_line + shift, end_column + 1
        raise KeyError(f"{type(node).__name__} node is not in {self.path}")

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

    def source_of(self, node: Located) -> str:
        """`node`'s text as written (its own parentheses left out, as libcst positions leave them)."""
        start, end = self.offsets(node)
        return self.text[start:end]

    def statement_line(self, line: int) -> int:
        """First line of the innermost statement (or compound statement header) covering `line`."""
        for first, piece in self.pieces:
            if first not in self._statements:
                self._statements[first] = [
                    (start, end)
                    for node in walk(piece)
                    if isinstance(node, (cst.BaseSmallStatement, cst.BaseCompoundStatement))
                    for start, _, end, _ in [self.position(node)]
                ]
        spans = [(start, end) for found in self._statements.values() for start, end in found if start <= line <= end]
        return min(spans, key=lambda span: span[1] - span[0])[0] if spans else line


class PartialFile(ParsedFile):
    """A file a unit only reads names from (`from utils import gather_logprobs`): CPython's parser
    finds its top-level statements and the names each binds; libcst parses a statement (a def, a
    class, an assignment, a top-level if/try with what it nests) only when a unit asks for a name
    it binds. On torch/_dynamo, units import dozens of 100-300 KB modules for a few names each."""

    partial = True

    def __init__(self, source: SourceFile, tree: ast.Module, *, whole: bool = False) -> None:
        """`whole`: the file is a root of the run, so its classes are parsed whole from the start
        (see `eager_module`), not once without their methods' bodies and then again whole."""
        super().__init__(source, cst.Module(body=[]))  # `module`: an empty stand-in for the rules
        self.pieces = []
        self._spans: list[tuple[int, int]] = []  # (first line, last line) of each top-level statement
        self._binders: dict[str, list[int]] = {}  # name -> the spans that may bind it
        # Per span: the name of the function or class it defines, when that is all it does.
        self._defines: list[str | None] = []
        # Per span of a class: its methods whose bodies are parsed only when one is asked for.
        self._deferred: dict[int, list[_Method]] = {}
        # The methods parsed without their bodies, by the stand-in node; once asked, the whole method.
        self._stand_ins: dict[cst.FunctionDef, _Method] = {}
        self._methods: dict[int, cst.FunctionDef | None] = {}  # by first line: parsed whole
        self._whole = whole  # a root's classes are parsed whole: the rules walk its methods
        self._data: set[int] = set()  # spans never parsed: tables of data (`_is_data`)
        for first, last, group in _line_groups(tree):
            self._spans.append((first, last))
            alone = group[0] if len(group) == 1 else None
            self._defines.append(alone.name if isinstance(alone, _AST_DEFINITIONS) else None)
            if isinstance(alone, ast.ClassDef) and not whole:  # a root's classes are parsed whole
                deferred = _deferred_methods(alone, self.lines())
                if deferred:
                    self._deferred[len(self._spans) - 1] = deferred
            elif _is_data(group, self.lines()[first - 1 : last]):
                self._data.add(len(self._spans) - 1)
            for statement in group:
                for name in _names_bound_by(statement):
                    self._binders.setdefault(name, []).append(len(self._spans) - 1)
                kind = _kind_of(statement)
                if kind is not None:
                    self._binders.setdefault(kind, []).append(len(self._spans) - 1)
        self._parsed: dict[int, cst.Module | None] = {}  # by span: its tree, None where libcst refused it
        self.parsed_characters = 0  # how much of the text has a tree: what keeping this file costs
        store = current_store()
        if store is not None:  # its pieces are the store's: so are the facts of their nodes
            self.memo = store.memo(self.path)

    def top_level(self, name: str) -> list[Statement]:
        """The top-level statements that may bind `name` (or be of a kind: `DECORATED_CLASSES`,
        `FROM_IMPORTS`), parsed now if they were not yet."""
        found: list[Statement] = []
        for span in dict.fromkeys(self._binders.get(name, ())):
            piece = self._piece(span)
            if piece is not None:  # what libcst cannot parse tells nothing: its names stay unknown
                found.extend(statements(piece))
        return found

    def eager_module(self, needed: Callable[[str], bool]) -> cst.Module | None:
        """The file's top-level statements in order, as one module to run, leaving out each function
        and class whose name `needed` rejects (parsed later only if a name is looked up); None when
        libcst refuses one of them (then only the whole file's parse can say where). The file is a
        root: its classes are parsed whole from now on (rules walk a root's methods)."""
        self._parse_whole()
        body: list[cst.SimpleStatementLine | cst.BaseCompoundStatement] = []
        for span, defines in enumerate(self._defines):
            if (defines is not None and not needed(defines)) or span in self._data:
                continue
            piece = self._piece(span)
            if piece is None:
                return None
            body.extend(piece.body)
        with _unvalidated_nodes():
            return cst.Module(body=body)

    def full_function(self, node: cst.FunctionDef) -> cst.FunctionDef:
        """The method `node` stands in for, with its body, parsed the first time it is asked for
        (a class read for one method, its base or its constructor leaves most bodies unparsed);
        `node` itself when it is whole, or where libcst refuses the method alone."""
        method = self._stand_ins.get(node)
        if method is None:
            return node
        if method.first not in self._methods:
            # Indented, a method is no module: under `if 1:` it parses at its own columns, and its
            # lines count from the line above it (`_WRAPPER`).
            text = _WRAPPER + "".join(self.lines()[method.first - 1 : method.last])
            self.parsed_characters += len(text)
            piece = self._parse_kept(method.first, text, -method.first)
            if piece is not None:
                self._add_piece(method.first, piece, wrapped=True)
            self._methods[method.first] = _wrapped_function(piece)
        return self._methods[method.first] or node

    def _piece(self, span: int) -> cst.Module | None:
        if span in self._data:
            return None  # its names stay unknown, as those of a statement libcst refuses
        if span not in self._parsed:
            first, _ = self._spans[span]
            deferred = [] if self._whole else self._deferred.get(span, [])
            text = self._span_text(span, deferred)
            self.parsed_characters += len(text)
            piece = self._parse_kept(first, text, self._occurrences[span])
            if piece is not None:
                self._add_piece(first, piece)
                if deferred:
                    self._stand_ins.update(_stand_ins(piece, deferred))
            self._parsed[span] = piece
        return self._parsed[span]

    def _parse_kept(self, first: int, text: str, occurrence: int) -> cst.Module | None:
        """`text` parsed, or the tree a `RetainedTrees` store keeps for it (then kept again)."""
        store = current_store()
        if store is None:
            return _parse_piece(text)
        key = self._kept_as[first] = (self.path, text, occurrence)
        return store.tree(key, lambda: _parse_piece(text))

    def _add_piece(self, first: int, piece: cst.Module, *, wrapped: bool = False) -> None:
        self.pieces = sorted([*self.pieces, (first, piece)], key=lambda item: item[0])
        if wrapped:
            self._wrapped.add(first)

    def _parse_whole(self) -> None:
        """Parse classes whole from now on; drop those parsed without method bodies (and the methods
        parsed since), to be parsed again whole when asked for. Only the unit starting now can hold
        their nodes: a unit's facts and definitions go with it."""
        if self._whole:
            return
        self._whole = True
        dropped = {self._spans[span][0] for span in self._deferred if span in self._parsed}
        dropped.update(self._methods)
        for span in self._deferred:
            self._parsed.pop(span, None)
        self.pieces = [(first, piece) for first, piece in self.pieces if first not in dropped]
        for table in (self._positions, self._statements, self._kept_as):
            for first in dropped:
                table.pop(first, None)
        self._ordered -= dropped
        self._wrapped -= dropped
        self._stand_ins.clear()
        self._methods.clear()

    def _span_text(self, span: int, deferred: Sequence[_Method] = ()) -> str:
        """The span's text; the bodies of `deferred` methods replaced by `...` and blank lines (so
        every other line keeps its number and columns)."""
        first, last = self._spans[span]
        lines = self.lines()[first - 1 : last]
        for method in deferred:
            start, end = method.body_first - first, method.last - first + 1
            lines[start:end] = [method.indent + "...\n", *["\n"] * (end - start - 1)]
        return "".join(lines)

    @functools.cached_property
    def _occurrences(self) -> list[int]:
        """Per span, how many spans before it have the same text (`torch.manual_seed(0)` twice);
        a method parsed alone is told by its line instead (a negative number: `full_function`)."""
        seen: Counter[str] = Counter()
        found = []
        for span in range(len(self._spans)):
            text = self._span_text(span)
            found.append(seen[text])
            seen[text] += 1
        return found


# A top-level assignment or expression this long is a table of data (torch's `op_db`, a generated
# mapping of 500,000 characters): what it binds is left unknown rather than parsed. On torch/ 23
# such statements were 2.7 of the 33.7 MB libcst parsed; tables of settings or dtypes are shorter.
MAX_DATA_CHARACTERS = 50_000


def _is_data(group: list[ast.stmt], lines: list[str]) -> bool:
    """Whether top-level statements (sharing lines) are a table of data: assignments or expressions
    longer than MAX_DATA_CHARACTERS."""
    simple = all(isinstance(statement, (ast.Assign, ast.AnnAssign, ast.Expr)) for statement in group)
    return simple and sum(len(line) for line in lines) > MAX_DATA_CHARACTERS


# What a method parsed alone is wrapped in (`PartialFile.full_function`).
_WRAPPER = "if 1:\n"
# A method's body is parsed only when asked for from this many lines (a shorter one costs about
# what its stand-in does).
MIN_DEFERRED_LINES = 4


@dataclass(frozen=True)
class _Method:
    """Lines of a method of a top-level class (1-based, in the file): its first (decorators
    included), its body's first and its last; and its body's indentation."""

    first: int
    body_first: int
    last: int
    indent: str
    index: int  # its place among the class's methods


def _deferred_methods(node: ast.ClassDef, lines: list[str]) -> list[_Method]:
    """The methods of a class (in its body, in order) whose bodies are long and start on a line of
    their own: those are parsed only when asked for."""
    found = []
    methods = [statement for statement in node.body if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for index, statement in enumerate(methods):
        body = statement.body[0]
        last = statement.end_lineno or statement.lineno
        line = lines[body.lineno - 1]
        # CPython's columns count UTF-8 bytes: only an ASCII indentation is taken as one.
        indent = line[: body.col_offset]
        if last - body.lineno + 1 < MIN_DEFERRED_LINES or indent.strip(" \t") or not indent.isascii():
            continue
        first = min([statement.lineno, *(decorator.lineno for decorator in statement.decorator_list)])
        found.append(_Method(first, body.lineno, last, indent, index))
    return found


def _stand_ins(piece: cst.Module, deferred: Sequence[_Method]) -> dict[cst.FunctionDef, _Method]:
    """The stand-in node of each deferred method in a class's piece: its methods come in the
    order CPython's tree gives them, so the deferred ones are found by their place among them."""
    node = piece.body[0] if len(piece.body) == 1 else None
    if not isinstance(node, cst.ClassDef) or not isinstance(node.body, cst.IndentedBlock):
        return {}
    methods = [statement for statement in node.body.body if isinstance(statement, cst.FunctionDef)]
    return {methods[method.index]: method for method in deferred if method.index < len(methods)}


def _wrapped_function(piece: cst.Module | None) -> cst.FunctionDef | None:
    """The method a piece parsed under `_WRAPPER` holds."""
    wrapper = piece.body[0] if piece is not None and len(piece.body) == 1 else None
    if isinstance(wrapper, cst.If) and isinstance(wrapper.body, cst.IndentedBlock) and len(wrapper.body.body) == 1:
        function = wrapper.body.body[0]
        return function if isinstance(function, cst.FunctionDef) else None
    return None


def _parse_piece(text: str) -> cst.Module | None:
    """A top-level statement's tree; None where libcst refuses it."""
    try:
        with recursion_limit(DEEP_RECURSION), _unvalidated_nodes():
            return cst.parse_module(text)
    except Exception:
        return None


def _evaluable(piece: cst.Module) -> list[cst.CSTNode]:
    """The piece's calls and arithmetic operators, parents first: what rules that read facts visit."""
    return [node for node in walk(piece) if type(node) in (cst.Call, cst.BinaryOperation)]


def _positions(piece: cst.Module, path: str) -> dict[int, Range]:
    """Every node's range in `piece` (of the file at `path`), by node id: one code generation pass
    (`mplint.positions`, imported only now)."""
    if _depth(piece) > MAX_POSITION_DEPTH:
        # libcst's code generation recurses through generators, which CPython runs on the C stack:
        # a tree this deep would crash the process, not raise. The engine makes a RecursionError
        # MP000 "nested too deeply" for the file.
        raise RecursionError(f"{path} nests deeper than {MAX_POSITION_DEPTH} levels")
    from mplint.positions import node_ranges

    with recursion_limit(DEEP_RECURSION):
        return node_ranges(piece)


# CPython's `try:` statements (`except*` came in 3.11).
_AST_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
if sys.version_info >= (3, 11):
    _AST_TRY_STATEMENTS: tuple[type[ast.Try] | type[ast.TryStar], ...] = (ast.Try, ast.TryStar)
else:
    _AST_TRY_STATEMENTS = (ast.Try,)


def _kind_of(statement: ast.stmt) -> str | None:
    """The kind a top-level statement is asked for by (`PartialFile.top_level`), if any."""
    if isinstance(statement, ast.ClassDef) and statement.decorator_list:
        return DECORATED_CLASSES
    return FROM_IMPORTS if isinstance(statement, ast.ImportFrom) else None


def _names_bound_by(statement: ast.stmt) -> list[str]:
    """The names a top-level statement may bind, through the if/try statements it nests."""
    names: list[str] = []
    pending = [statement]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.extend(leaf.id for target in targets for leaf in ast.walk(target) if isinstance(leaf, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.extend((alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*")
            if any(alias.name == "*" for alias in node.names):
                names.append(STAR_IMPORT)
        elif isinstance(node, ast.If):
            pending.extend([*node.body, *node.orelse])
        elif isinstance(node, _AST_TRY_STATEMENTS):
            handlers = [inner for handler in node.handlers for inner in handler.body]
            pending.extend([*node.body, *handlers, *node.orelse, *node.finalbody])
    return names


def read_partially(source: SourceFile) -> PartialFile | None:
    """The file as a `PartialFile`, when CPython's parser reads it (else None: parse it whole)."""
    tree = python_tree(source)
    return PartialFile(source, tree) if tree is not None else None


def python_tree(source: SourceFile) -> ast.Module | None:
    """CPython's tree of the file, or None when CPython refuses it. Where a run keeps trees for
    the next (`retained`), only the lines an edit changed are parsed again (`_spliced`)."""
    assert source.text is not None
    text, path = source.text, source.path
    store = current_store()
    if store is None:
        return _parsed_by_python(text, path)

    def renew(last: _PythonTree | None) -> _PythonTree | None:
        lines = split_lines(text)
        tree = (_spliced(last, lines, path) if last is not None else None) or _parsed_by_python(text, path)
        # A text that does not parse keeps the last one that did: the next edit may mend it.
        return _PythonTree(text, lines, tree) if tree is not None else last

    kept = store.renewed("python", path, renew)
    return kept.tree if kept is not None and kept.text == text else None


def _parsed_by_python(text: str, path: str) -> ast.Module | None:
    try:
        with recursion_headroom(SCREEN_DEPTH), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


@dataclass(frozen=True)
class _PythonTree:
    """A file's text as a run read it, its lines and CPython's tree of them."""

    text: str
    lines: list[str]
    tree: ast.Module


def _spliced(last: _PythonTree, lines: list[str], path: str) -> ast.Module | None:
    """CPython's tree of `lines`: the top-level statements of `last` whose lines are the same, at the
    same place, taken as they are; each stretch of lines between them parsed alone. None where a
    stretch does not parse alone (an edit that opens a string or a bracket): then only the whole
    text can tell. A stretch that parses alone ends where a top-level statement may begin, outside
    any bracket or string, so the whole text parses into these same statements (CPython's parser
    checks nothing across statements: `__future__` imports and misplaced `return`s are the
    compiler's)."""
    body: list[ast.stmt] = []
    start = 1  # the first line not yet in `body`
    for first, last_line, group in _line_groups(last.tree):
        if lines[first - 1 : last_line] != last.lines[first - 1 : last_line]:
            continue
        if first > start:
            between = _stretch(lines, start, first - 1, path)
            if between is None:
                return None
            body.extend(between)
        body.extend(group)
        start = last_line + 1
    if start <= len(lines):
        rest = _stretch(lines, start, len(lines), path)
        if rest is None:
            return None
        body.extend(rest)
    return ast.Module(body=body, type_ignores=[])


def _stretch(lines: list[str], first: int, last: int, path: str) -> list[ast.stmt] | None:
    """The statements of lines `first` to `last` (1-based) parsed alone, at their lines in the file."""
    stretch = lines[first - 1 : last]
    if all(not line.strip(" \t\f\r\n") for line in stretch):  # the blank lines between two definitions
        return []
    tree = _parsed_by_python("".join(stretch), path)
    return ast.increment_lineno(tree, first - 1).body if tree is not None else None


def _line_groups(tree: ast.Module) -> list[tuple[int, int, list[ast.stmt]]]:
    """(first line, last line, statements) of each run of top-level statements that share lines
    (`a = 1; b = 2`), in order; a definition's first line is its first decorator's."""
    groups: list[tuple[int, int, list[ast.stmt]]] = []
    for statement in tree.body:
        first = min([statement.lineno, *(item.lineno for item in getattr(statement, "decorator_list", ()))])
        last = statement.end_lineno or statement.lineno
        if groups and first <= groups[-1][1]:
            group_first, group_last, group = groups[-1]
            groups[-1] = (group_first, max(last, group_last), [*group, statement])
        else:
            groups.append((first, last, [statement]))
    return groups
