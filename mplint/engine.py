"""Parse once per file, run the precision model over the run's files together, then every rule in
one batched visit per file; MP000 for files that cannot be read or parsed; noqa last."""

from __future__ import annotations

import ast
import contextlib
import functools
import re
import sys
import warnings
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Union

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from mplint import suppression
from mplint.errors import InternalError
from mplint.findings import Edit, Finding, Fix, Severity
from mplint.precision.model import PrecisionModel, analyze
from mplint.precision.project import ModuleIndex
from mplint.rule import Autofix, Rule
from mplint.rules.mp000_invalid_syntax import InvalidSyntax
from mplint.tree import children



@dataclass(frozen=True)
class SourceFile:
    path: str  # display path (relative to cwd when possible, posix slashes)
    text: Optional[str]  # decoded source; None when unreadable
    error: Optional[str] = None  # why `text` is None


class ParsedFile:
    """One file's tree, with positions and statement lines computed only when a finding needs them."""

    def __init__(self, source: SourceFile, module: cst.Module) -> None:
        self.source = source
        self.module = module
        self._positions: Optional[dict[cst.CSTNode, CodeRange]] = None
        self._statements: Optional[list[tuple[int, int]]] = None
        self._events: Optional[list[tuple[cst.CSTNode, bool]]] = None
        self._filtered: dict[frozenset[str], list[tuple[cst.CSTNode, bool]]] = {}

    def events(self, kinds: frozenset[str]) -> list[tuple[cst.CSTNode, bool]]:
        """The tree as (node, leaving) pairs in visit order, only nodes whose type name is in
        `kinds`; the walk is done once, each filtered list on first use."""
        if self._events is None:
            self._events = []
            stack: list[tuple[cst.CSTNode, bool]] = [(self.module, False)]
            while stack:
                node, leaving = stack.pop()
                self._events.append((node, leaving))
                if not leaving:
                    stack.append((node, True))
                    stack.extend((child, False) for child in reversed(children(node)))
        if kinds not in self._filtered:
            self._filtered[kinds] = [event for event in self._events if type(event[0]).__name__ in kinds]
        return self._filtered[kinds]

    def position(self, node: cst.CSTNode) -> CodeRange:
        if self._positions is None:
            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
            self._positions = dict(wrapper.resolve(PositionProvider))
        return self._positions[node]

    def fix(self, autofix: Autofix) -> Fix:
        """A rule's node replacements as text edits of this file (1-based columns, end exclusive)."""
        edits = []
        for replacement in autofix.replacements:
            node, new = replacement.node, replacement.new
            start, end = self.position(node).start, self.position(node).end
            if not isinstance(new, str):
                # A node's position excludes its parentheses but its code includes them: replace
                # them too, or every fix would add a pair.
                start = self.position(node.lpar[0]).start if getattr(node, "lpar", None) else start
                end = self.position(node.rpar[-1]).end if getattr(node, "rpar", None) else end
            text = new if isinstance(new, str) else self.module.code_for_node(new)
            edits.append(Edit(start.line, start.column + 1, end.line, end.column + 1, text))
        return Fix(autofix.description, autofix.applicability, tuple(edits))

    def statement_line(self, line: int) -> int:
        """First line of the innermost simple statement (or compound header) covering `line`."""
        if self._statements is None:
            self.position(self.module)
            assert self._positions is not None
            self._statements = sorted(
                (span.start.line, span.end.line)
                for node, span in self._positions.items()
                if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
            )
        covering = [(start, end) for start, end in self._statements if start <= line <= end]
        return min(covering, key=lambda span: span[1] - span[0])[0] if covering else line


class FileContext:
    """What a rule sees of the file it is visiting, and where its reports go."""

    def __init__(self, parsed: ParsedFile, files: dict[str, ParsedFile], precision: PrecisionModel) -> None:
        self.parsed = parsed
        self.path = parsed.source.path
        self.files = files
        self.precision = precision
        self.findings: list[Finding] = []

    def report(
        self, rule: Rule, node: cst.CSTNode, message: str, *, path: Optional[str] = None, fix: Optional[Autofix] = None
    ) -> None:
        file = self.files[path or self.path]
        span = file.position(node)
        self.findings.append(
            Finding(
                code=rule.CODE,
                name=rule.NAME,
                path=file.source.path,
                line=span.start.line,
                column=span.start.column + 1,
                end_line=span.end.line,
                end_column=span.end.column + 1,
                message=message,
                severity=rule.SEVERITY,
                fix=file.fix(fix) if fix is not None else None,
            )
        )

    def line_of(self, node: cst.CSTNode, path: Optional[str] = None) -> int:
        return self.files[path or self.path].position(node).start.line


@dataclass(frozen=True)
class Plan:
    """How a run is split: each unit is a root file analysed on its own (with what it imports,
    parsed when read), so units can run in parallel and be cached; `unanalysed` files mention no
    rule's trigger word and are only checked for syntax."""

    units: tuple[str, ...]
    unanalysed: tuple[SourceFile, ...]
    unreadable: tuple[SourceFile, ...]


@dataclass(frozen=True)
class UnitResult:
    findings: tuple[Finding, ...]
    # Every file the unit parsed (its root and the files it read names from): its cache key.
    read: tuple[str, ...]


def lint_files(files: Sequence[SourceFile], rules: Sequence[type[Rule]]) -> list[Finding]:
    """Check `files` together in one process: the plain composition of the pieces below."""
    run = Run(files)
    plan = run.plan(rules)
    findings = [finding for root in plan.units for finding in run.lint_unit(root, rules).findings]
    findings += [finding for source in plan.unanalysed for finding in check_syntax(source)]
    findings += [unreadable(source) for source in plan.unreadable]
    return sorted(set(findings), key=Finding.sort_key)


class Run:
    """The files of one run, parsed at most once each, shared by the units a process analyses."""

    def __init__(self, files: Sequence[SourceFile]) -> None:
        self.files = {source.path: source for source in files}
        self.index = ModuleIndex(list(self.files))
        self.parsed: dict[str, Union[ParsedFile, Finding]] = {}

    def plan(self, rules: Sequence[type[Rule]]) -> Plan:
        readable = [source for source in self.files.values() if source.text is not None]
        unreadable_files = tuple(source for source in self.files.values() if source.text is None)
        triggers = frozenset().union(*(rule.TRIGGERS for rule in rules if rule is not InvalidSyntax))
        sinks = frozenset().union(*(rule.SINKS for rule in rules))
        if not triggers:  # MP000 alone: every file is parsed
            return Plan(tuple(source.path for source in readable), (), unreadable_files)
        roots = _prefiltered(readable, triggers, sinks, self.index)
        unanalysed = tuple(source for source in readable if source.path not in roots)
        return Plan(tuple(path for path in self.files if path in roots), unanalysed, unreadable_files)

    def parse(self, path: str) -> Union[ParsedFile, Finding]:
        """The file's tree, or its MP000 finding when it does not parse."""
        if path not in self.parsed:
            source = self.files[path]
            assert source.text is not None
            if _too_deep_for_libcst(source.text):
                self.parsed[path] = _invalid(path, 1, 1, TOO_DEEP)
                return self.parsed[path]
            try:
                self.parsed[path] = ParsedFile(source, cst.parse_module(source.text))
            except cst.ParserSyntaxError as error:
                # CPython's message and position when it rejects the text too: libcst's native
                # parser puts parser errors one line late, and says less.
                self.parsed[path] = next(iter(check_syntax(source)), None) or _invalid(
                    path, error.raw_line, error.raw_column + 1, _syntax_message(error)
                )
            except (RecursionError, ValueError) as error:
                self.parsed[path] = _invalid(path, 1, 1, f"cannot parse: {type(error).__name__}: {error}")
        return self.parsed[path]

    def lint_unit(self, root: str, rules: Sequence[type[Rule]]) -> UnitResult:
        with _recursion_limit(DEEP_RECURSION):
            return self._lint_unit(root, rules)

    def _lint_unit(self, root: str, rules: Sequence[type[Rule]]) -> UnitResult:
        parsed = self.parse(root)
        if isinstance(parsed, Finding):
            return UnitResult((parsed,), (root,))
        files: dict[str, ParsedFile] = {root: parsed}

        def load(path: str) -> Optional[cst.Module]:
            found = self.parse(path) if self.files[path].text is not None else None
            if isinstance(found, ParsedFile):
                files[path] = found
                return found.module
            return None

        try:
            precision = analyze({root: parsed.module}, load, self.index)
        except RecursionError:  # expressions nested deeper than a recursive walk can follow
            return UnitResult((_invalid(root, 1, 1, TOO_DEEP),), (root,))
        findings: list[Finding] = []
        for path, file in list(files.items()):
            if not precision.entered(path):
                continue  # only read for names (class bases, constants): no facts of its own here
            context = FileContext(file, files, precision)
            # A rule visits only files that mention one of its words: it could not fire elsewhere.
            relevant = [rule for rule in rules if _mentions(file.source, rule.TRIGGERS | rule.SINKS)]
            try:
                visit_rules(file, [rule(context) for rule in relevant])
            except RecursionError:  # libcst's position walk, on a finding in a deeply nested file
                return UnitResult((_invalid(path, 1, 1, TOO_DEEP),), tuple(sorted(files)))
            except Exception as error:  # a rule bug must name the file, not print a traceback
                raise InternalError(path, "a rule failed", error) from error
            findings.extend(context.findings)
        return UnitResult(tuple(_unsuppressed(findings, files)), tuple(sorted(files)))


# The interpreter and libcst's position walk recurse once per nesting level of the code; Python's
# default limit (1000) stops them at a few hundred nested elifs or parentheses. 3.11 runs
# Python-to-Python calls without the C stack, so a higher limit is safe; deeper still is MP000.
DEEP_RECURSION = 6000


@contextlib.contextmanager
def _recursion_limit(limit: int, *, exact: bool = False) -> Iterator[None]:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(limit if exact else max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def _too_deep_for_libcst(text: str) -> bool:
    """libcst's native parser overflows its stack (a segfault, no exception) on expressions nested
    a few thousand deep; CPython's parser refuses them with a RecursionError at the default limit,
    so it screens the text first (at a fifth of libcst's parse time)."""
    with _recursion_limit(1000, exact=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings about the user's code are not ours to print
        try:
            ast.parse(text)
        except (RecursionError, MemoryError):
            return True
        except SyntaxError as error:  # "too many nested parentheses", "too complex"
            return "nested" in str(error.msg) or "complex" in str(error.msg)
        except ValueError:
            return False  # libcst reports it itself
    return False


def check_syntax(source: SourceFile) -> list[Finding]:
    """MP000 for a file no rule needed to parse: CPython's parser is ~5x faster than libcst's."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(source.text or "", filename=source.path)
    except SyntaxError as error:
        reason = f"cannot parse: {error.msg}"
        return [_invalid(source.path, error.lineno or 1, error.offset or 1, reason)]
    except (RecursionError, ValueError, MemoryError) as error:
        return [_invalid(source.path, 1, 1, f"cannot parse: {type(error).__name__}")]
    return []


def unreadable(source: SourceFile) -> Finding:
    return _invalid(source.path, 1, 1, source.error or "cannot read file")


def visit_rules(file: "ParsedFile", rules: Sequence[Rule]) -> None:
    """Call each rule's `visit_<Node>` before a node's children and `leave_<Node>` after. The walk
    itself (see `mplint.tree`) is done once per file, and replayed with only the node types some
    rule handles, however many units visit the file."""
    handlers: dict[str, tuple[list, list]] = {}
    for rule in rules:
        for name in _handled_names(type(rule)):
            handlers.setdefault(name, ([], []))
    for name, (visits, leaves) in handlers.items():
        visits += _handlers(rules, f"visit_{name}")
        leaves += _handlers(rules, f"leave_{name}")
    for node, leaving in file.events(frozenset(handlers)):
        for handler in handlers[type(node).__name__][leaving]:
            handler(node)


@functools.lru_cache(maxsize=None)
def _handled_names(rule: type[Rule]) -> frozenset[str]:
    """Node type names a rule class has its own visit_/leave_ methods for."""
    return frozenset(
        attr.split("_", 1)[1]
        for attr in dir(rule)
        if attr.startswith(("visit_", "leave_")) and getattr(rule, attr) is not getattr(cst.BatchableCSTVisitor, attr, None)
    )


def _handlers(rules: Sequence[Rule], name: str) -> list:
    """The rules' own `name` methods: libcst's visitor base defines a no-op for every node type."""
    inherited = getattr(cst.BatchableCSTVisitor, name, None)
    return [getattr(rule, name) for rule in rules if getattr(type(rule), name, None) not in (None, inherited)]


_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import|import[ \t]+([\w.]+))", re.MULTILINE)


def _prefiltered(
    files: list[SourceFile], triggers: frozenset[str], sinks: frozenset[str], index: ModuleIndex
) -> set[str]:
    """The cheap text prefilter: files that mention a trigger word, and files that import one of
    those directly and mention a sink word (a caller whose calls carry low precision across files)."""
    selected = {source.path for source in files if _mentions(source, triggers)}
    callers = {
        source.path
        for source in files
        if source.path not in selected and _mentions(source, sinks) and _imported_paths(source, index) & selected
    }
    return selected | callers


def _mentions(source: SourceFile, words: frozenset[str]) -> bool:
    text = source.text or ""
    return any(word in text for word in words)


def _imported_paths(source: SourceFile, index: ModuleIndex) -> set[str]:
    found: set[str] = set()
    for dots, from_module, plain_module in _IMPORT.findall(source.text or ""):
        name = from_module or plain_module
        path = index.resolve(name, source.path, len(dots))
        if path is not None:
            found.add(path)
    return found


def _unsuppressed(findings: list[Finding], parsed: dict[str, ParsedFile]) -> list[Finding]:
    findings = sorted(set(findings), key=Finding.sort_key)
    directives: dict[str, dict[int, Optional[frozenset[str]]]] = {}
    kept: list[Finding] = []
    for finding in findings:
        file = parsed.get(finding.path)
        if file is None or file.source.text is None:
            kept.append(finding)
            continue
        if finding.path not in directives:
            directives[finding.path] = suppression.noqa_directives(file.source.text)
        lines = (finding.line, file.statement_line(finding.line))
        if not suppression.is_suppressed(finding.code, lines, directives[finding.path]):
            kept.append(finding)
    return kept


def _syntax_message(error: cst.ParserSyntaxError) -> str:
    return "cannot parse: " + str(error.message).strip().splitlines()[0]


# CPython itself refuses more than 200 nested brackets; libcst parses deeper than its own walks go.
TOO_DEEP = "cannot analyse: nested too deeply"


def _invalid(path: str, line: int, column: int, message: str) -> Finding:
    line, column = max(line, 1), max(column, 1)
    return Finding(InvalidSyntax.CODE, InvalidSyntax.NAME, path, line, column, line, column, message, Severity.ERROR)
