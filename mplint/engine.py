"""Parse once per file, run the precision model over the run's files together, then every rule in
one batched visit per file; MP000 for files that cannot be read or parsed; noqa last."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from mplint import suppression
from mplint.errors import InternalError
from mplint.findings import Edit, Finding, Fix, Severity
from mplint.precision.model import PrecisionModel, analyze
from mplint.precision.project import ModuleIndex
from mplint.rule import Autofix, Rule
from mplint.rules.mp000_invalid_syntax import InvalidSyntax



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

    def position(self, node: cst.CSTNode) -> CodeRange:
        if self._positions is None:
            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
            self._positions = dict(wrapper.resolve(PositionProvider))
        return self._positions[node]

    def fix(self, autofix: Autofix) -> Fix:
        """A rule's node replacements as text edits of this file (1-based columns, end exclusive)."""
        edits = []
        for replacement in autofix.replacements:
            span = self.position(replacement.node)
            new = replacement.new
            text = new if isinstance(new, str) else self.module.code_for_node(new)
            edits.append(Edit(span.start.line, span.start.column + 1, span.end.line, span.end.column + 1, text))
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


def lint_files(files: Sequence[SourceFile], rules: Sequence[type[Rule]]) -> list[Finding]:
    # Files that mention no rule's trigger word are never parsed (so MP000 is only reported for
    # files some rule needed); with MP000 alone selected, every file is parsed.
    triggers = frozenset().union(*(rule.TRIGGERS for rule in rules if rule is not InvalidSyntax))
    findings: list[Finding] = []
    parsed: dict[str, ParsedFile] = {}
    by_path = {source.path: source for source in files}

    def load(path: str) -> Optional[cst.Module]:
        if path not in parsed:
            source = by_path[path]
            if source.text is None:
                return None
            try:
                parsed[path] = ParsedFile(source, cst.parse_module(source.text))
            except (cst.ParserSyntaxError, RecursionError, ValueError):
                return None  # reported as MP000 when the file is itself checked
        return parsed[path].module

    roots: dict[str, cst.Module] = {}
    readable = [source for source in files if source.text is not None]
    findings.extend(_invalid(source.path, 1, 1, source.error or "cannot read file") for source in files if source.text is None)
    for source in _prefiltered(readable, triggers) if triggers else readable:
        assert source.text is not None
        try:
            roots[source.path] = cst.parse_module(source.text)
            parsed[source.path] = ParsedFile(source, roots[source.path])
        except cst.ParserSyntaxError as error:
            findings.append(_invalid(source.path, error.raw_line, error.raw_column + 1, _syntax_message(error)))
        except (RecursionError, ValueError) as error:
            findings.append(_invalid(source.path, 1, 1, f"cannot parse: {type(error).__name__}: {error}"))
    if not roots:
        return sorted(findings, key=Finding.sort_key)
    try:
        precision = analyze(roots, load, [source.path for source in files])
    except RecursionError as error:
        raise InternalError("the precision model", "nesting too deep to analyse", error) from error
    for path, file in list(parsed.items()):
        context = FileContext(file, parsed, precision)
        try:
            cst.visit_batched(file.module, [rule(context) for rule in rules])
        except Exception as error:  # a rule bug must name the file, not print a traceback
            raise InternalError(path, "a rule failed", error) from error
        findings.extend(context.findings)
    return _unsuppressed(sorted(set(findings), key=Finding.sort_key), parsed)


_IMPORT = re.compile(r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import|import[ \t]+([\w.]+))", re.MULTILINE)


def _prefiltered(files: list[SourceFile], triggers: frozenset[str]) -> list[SourceFile]:
    """The cheap text prefilter: files that mention a trigger word, and files that import from
    those (their calls may carry low precision across files). The others are never parsed."""
    index = ModuleIndex([source.path for source in files])
    selected = {source.path for source in files if any(word in source.text for word in triggers)}  # type: ignore[operator]
    imports = {source.path: _imported_paths(source, index) for source in files if source.path not in selected}
    grew = True
    while grew:
        grew = False
        for path, imported in imports.items():
            if path not in selected and imported & selected:
                selected.add(path)
                grew = True
    return [source for source in files if source.path in selected]


def _imported_paths(source: SourceFile, index: ModuleIndex) -> set[str]:
    found: set[str] = set()
    for dots, from_module, plain_module in _IMPORT.findall(source.text or ""):
        name = from_module or plain_module
        path = index.resolve(name, source.path, len(dots))
        if path is not None:
            found.add(path)
    return found


def _unsuppressed(findings: list[Finding], parsed: dict[str, ParsedFile]) -> list[Finding]:
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


def _invalid(path: str, line: int, column: int, message: str) -> Finding:
    line, column = max(line, 1), max(column, 1)
    return Finding(InvalidSyntax.CODE, InvalidSyntax.NAME, path, line, column, line, column, message, Severity.ERROR)
