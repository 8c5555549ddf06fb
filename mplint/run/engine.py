"""Plan a run (which files are units, which only need a syntax check), then per unit: parse what it
reads once, run the precision model, and visit each file it entered with the rules whose words
the file's code mentions (rules that read facts over the nodes the unit evaluated, syntactic rules
over the whole tree); MP000 for files that cannot be read or parsed; noqa last."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import libcst as cst

from mplint import suppression
from mplint.analysis.launch_options import outside_code
from mplint.analysis.model import PrecisionModel, analyze
from mplint.analysis.project import ImportGraph, ModuleIndex
from mplint.analysis.scopes import Loaded
from mplint.errors import InternalError
from mplint.findings import Edit, Finding, Fix, Place, Severity
from mplint.registry import all_rules
from mplint.rule import Autofix, Rule
from mplint.rules.mp000_invalid_syntax import InvalidSyntax
from mplint.run.prefilter import CodeFacts, Prefilter
from mplint.run.reach import Reach
from mplint.source import (
    DEEP_RECURSION,
    TOO_DEEP,
    ParsedFile,
    PartialFile,
    invalid,
    parse,
    python_tree,
    recursion_limit,
    syntax_error,
)
from mplint.text import SourceFile
from mplint.tree import Located, children

# (node, leaving) pairs in visit order: what a batched rule visit replays.
Events = list[tuple[cst.CSTNode, bool]]


class FileContext:
    """What a rule sees of the file it is visiting, and where its reports go."""

    def __init__(
        self,
        parsed: ParsedFile,
        files: dict[str, ParsedFile],
        precision: PrecisionModel,
        imports: Callable[[], ImportGraph],
    ) -> None:
        self.parsed = parsed
        self.path = parsed.path
        self.files = files
        self.precision = precision
        self._imports = imports
        self.findings: list[Finding] = []

    def used_elsewhere(self, name: str) -> bool:
        """Whether another file of the run may use this file's module-level `name` (it imports
        it, `*`, or the module and mentions `.name`): a fix that rewires the name breaks them."""
        return self._imports().used_elsewhere(self.path, name)

    def report(
        self,
        rule: Rule,
        node: Located,
        message: str,
        *,
        path: str | None = None,
        fix: Autofix | None = None,
        severity: Severity | None = None,
    ) -> None:
        file = self.files[path or self.path]
        line, column, end_line, end_column = file.position(node)
        self.findings.append(
            Finding(
                code=rule.CODE,
                name=rule.NAME,
                path=file.path,
                line=line,
                column=column,
                end_line=end_line,
                end_column=end_column,
                message=message,
                severity=severity or rule.SEVERITY,
                fix=_text_edits(file, fix) if fix is not None else None,
            )
        )


def _text_edits(file: ParsedFile, autofix: Autofix) -> Fix:
    """A rule's replacements (character offsets into the file) as line/column edits."""
    edits = []
    for replacement in autofix.replacements:
        start, end = file.location(replacement.start), file.location(replacement.end)
        edits.append(Edit(*start, *end, replacement.new))
    return Fix(autofix.description, autofix.applicability, tuple(edits))


# Source kept parsed whole per process, in characters (~500 MB of libcst trees): roots; files units
# import names from are read piece by piece instead (`PartialFile`).
PARSED_BUDGET = 1_000_000
# Larger files (generated code, vendored bundles) are only checked for syntax: their libcst tree
# alone would take gigabytes (10 MB of source: 7 GB).
MAX_ANALYSED_CHARACTERS = 2_000_000


@dataclass(frozen=True)
class Plan:
    """How a run is split: each unit is a root file analysed on its own (with what it imports,
    parsed when read), so units can run in parallel and be cached; `unanalysed` files mention no
    rule's trigger word and are only checked for syntax."""

    units: tuple[str, ...]
    unanalysed: tuple[SourceFile, ...]
    unreadable: tuple[SourceFile, ...]
    # Files beside the code the plan read (launch commands that make a script a unit): a cached run
    # depends on them too.
    read: tuple[str, ...] = ()
    # Units rooted in unchecked files that import checked ones: only their findings in checked files count.
    importers: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnitResult:
    findings: tuple[Finding, ...]
    # Every file the unit parsed (its root and the files it read names from): its cache key.
    read: tuple[str, ...]
    # Optimizers a framework steps with fp32 master weights in this unit's run (`without_refuted`).
    stepped: tuple[Place, ...] = ()


def lint_files(
    files: Sequence[SourceFile], rules: Sequence[type[Rule]], checked: frozenset[str] | None = None
) -> list[Finding]:
    """Check `files` together in one process (only those in `checked` when given, the others read
    for what they define): the plain composition of the pieces below."""
    with collector_paused():
        run = Run(files, rules, checked=checked)
        plan = run.plan()
        findings: list[Finding] = []
        stepped: list[Place] = []
        for root in [*plan.units, *plan.importers]:
            unit = run.lint_unit(root)
            findings += run.findings_in_checked(unit.findings) if root in plan.importers else unit.findings
            stepped += unit.stepped
        findings += [finding for source in plan.unanalysed for finding in check_syntax(source)]
        findings += [unreadable(source) for source in plan.unreadable]
    return sorted(set(without_refuted(findings, stepped, rules)), key=Finding.sort_key)


def without_refuted(
    findings: Iterable[Finding], stepped: Iterable[Place], rules: Sequence[type[Rule]]
) -> list[Finding]:
    """`findings` less those about half steps of an optimizer that some unit's framework steps with
    fp32 master weights: each unit judges alone, and a LightningModule's `configure_optimizers` is
    judged from its own file too, where the DeepSpeed Trainer fitting it in `train.py` is not seen."""
    codes = {rule.CODE for rule in rules if rule.NEEDS_HALF_STEPS}
    places = set(stepped)
    return [
        found for found in findings if found.code not in codes or (found.path, found.line, found.column) not in places
    ]


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a run lints. A run holds millions of
    long-lived objects (parse trees, facts) that every full collection traverses again: that was
    40% of a cold run over torch/ (84 s -> 50 s without it) and two thirds on one 10 MB file
    (47 s -> 15 s), while the run makes little cyclic garbage (peak memory +15% and +1.5%).
    Reference counting still frees everything else; the collector is restored afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    # What the process held before the run (a test session, an editor's state) is no unit's
    # garbage: frozen, so `collect_unit_garbage` never traverses it.
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()  # what was frozen is the collector's again
        if enabled:
            gc.enable()


def collect_unit_garbage() -> None:
    """Free what a finished unit left in reference cycles, with the collector paused.

    A unit's scopes, function definitions and values refer to each other (a function's scope
    holds the value that holds the function), and through facts to libcst nodes: with the cyclic
    collector paused, every unit's trees and state stayed alive (diffusers' pipelines: 7 GB when
    cached pieces were not reused). A collection here reaches only what was made since the last
    one: survivors (cached trees, the plan) are frozen, so the long-lived objects that made full
    collections cost 40% of a run are never traversed again."""
    gc.collect()
    gc.freeze()


class Run:
    """The files of one run with its rules; each file parsed at most once, shared by the units a
    process analyses. Only the files in `checked` (all when None) are checked: the others are
    the project's, read for the names the checked ones import."""

    def __init__(
        self,
        files: Sequence[SourceFile],
        rules: Sequence[type[Rule]],
        code_facts: Mapping[str, CodeFacts] | None = None,
        roots: frozenset[str] = frozenset(),
        checked: frozenset[str] | None = None,
    ) -> None:
        self.files = {source.path: source for source in files}
        self.checked = checked
        # The plan's units: read by another unit first, such a file is still parsed as a root is.
        self.roots = roots
        self.rules = tuple(rules)
        # Closing over the files, not the run: a run in no reference cycle is freed as soon as it is
        # done, though the cyclic collector is paused (a language server runs one per edit).
        by_path = self.files
        self.index = ModuleIndex(list(self.files), lambda path: by_path[path].text)
        self.prefilter = Prefilter(
            self.index, (word for rule in rules for word in rule.TRIGGERS | rule.SINKS), code_facts
        )
        # What a function nobody calls must mention to be analysed: any rule's word (a selected
        # rule's finding may rest on facts of code that only another rule's words name).
        self.words = frozenset(word for rule in all_rules() for word in rule.TRIGGERS | rule.SINKS)
        # Trees of recently used files, least recently used first, within PARSED_BUDGET bytes of
        # source (a libcst tree holds ~500 bytes per byte of source: keeping every tree of a
        # large repository would not fit in memory).
        self.parsed: OrderedDict[str, ParsedFile | Finding] = OrderedDict()
        self._parsed_bytes = 0
        self._kept_sizes: dict[str, int] = {}  # characters of parsed source each kept tree counts for
        # Files units import names from, parsed piece by piece (only what was asked for is parsed).
        self.partial: dict[str, PartialFile | None] = {}
        # Per tree (not per path: an evicted tree's events must go with it).
        self._events: weakref.WeakKeyDictionary[ParsedFile, dict[frozenset[type], Events]] = weakref.WeakKeyDictionary()
        self._relevant: dict[str, list[type[Rule]]] = {}
        self.reach = Reach(self.index, self.words)

    def plan(self) -> Plan:
        rules = self.rules
        checked = self.checked
        own = [source for source in self.files.values() if checked is None or source.path in checked]
        readable = [source for source in own if source.text is not None]
        unreadable_files = tuple(source for source in own if source.text is None)
        triggers = frozenset().union(*(rule.TRIGGERS for rule in rules if rule is not InvalidSyntax))
        sinks = frozenset().union(*(rule.SINKS for rule in rules))
        if not triggers:  # MP000 alone: every file is parsed
            return Plan(tuple(source.path for source in readable), (), unreadable_files)
        # The units of a run over the whole project, those rooted in the checked files and in files
        # importing them (a changed helper is judged with the precision its callers give it).
        analysable = [
            source
            for source in self.files.values()
            if source.text is not None and len(source.text) <= MAX_ANALYSED_CHARACTERS
        ]
        # A script the repository launches with a low-precision option (`--bf16 True`), or that names a
        # config file holding one (`dtype: bfloat16`), is a unit when its code mentions a sink or
        # imports code that does (its Trainer subclass in another module): the precision comes from
        # outside the code (`launch_options`).
        leading = self.prefilter.leading_to(analysable, sinks)
        roots = self.prefilter.roots(analysable, triggers, sinks, leading)
        if checked is not None:
            wanted = checked | self.prefilter.importers(analysable, set(checked))
            roots &= wanted
            leading &= wanted
        candidates = {
            os.path.abspath(source.path): source
            for source in analysable
            if source.path not in roots and source.path in leading
        }
        codes = {path: source.text or "" for path, source in candidates.items()}
        configured, read = outside_code(self.index.root, codes, triggers) if candidates else (set(), ())
        roots |= {candidates[path].path for path in configured}
        unanalysed = tuple(source for source in readable if source.path not in roots)
        self.roots = frozenset(roots)
        units = [path for path in self.files if path in roots]
        own_units = tuple(path for path in units if checked is None or path in checked)
        importers = tuple(path for path in units if checked is not None and path not in checked)
        return Plan(own_units, unanalysed, unreadable_files, read, importers)

    @functools.cached_property
    def imports(self) -> ImportGraph:
        """Who imports what from whom in this run (made when a rule first asks)."""
        return ImportGraph(
            self.index, {path: source.text for path, source in self.files.items() if source.text is not None}
        )

    def parse(self, path: str) -> ParsedFile | Finding:
        """The file's tree, or its MP000 finding when it does not parse."""
        if path in self.parsed:
            self.parsed.move_to_end(path)
            return self.parsed[path]
        source = self.files[path]
        tree = parse(source)
        found = tree if isinstance(tree, Finding) else ParsedFile(source, tree)
        self._keep(path, found, len(source.text or ""))
        return found

    def parse_root(self, path: str, reaches: Callable[[str, str], bool]) -> tuple[ParsedFile, cst.Module] | Finding:
        """A root's tree and the module its unit runs: only the top-level code and the definitions
        that may lead to a rule's word (`Reach`), the others parsed if a name is looked up; the
        whole file where a rule that reads whole trees (MP203's imports and every use of them)
        could fire, where CPython refuses the file, or where libcst refuses a piece (MP000)."""
        known = self.parsed.get(path)
        if isinstance(known, ParsedFile) and not known.partial:
            self.parsed.move_to_end(path)
            return known, known.module
        source = self.files[path]
        if not any(rule.SYNTACTIC for rule in self._relevant_rules(source)):
            partial = known if isinstance(known, PartialFile) else self.partial.get(path) or self._read_partially(path)
            if partial is not None:
                module = partial.eager_module(lambda name: reaches(path, name))
                if module is not None:
                    if path not in self.partial:
                        self._keep(path, partial, partial.parsed_characters)
                    return partial, module
        self.parsed.pop(path, None)
        parsed = self.parse(path)
        return parsed if isinstance(parsed, Finding) else (parsed, parsed.module)

    def _keep(self, path: str, found: ParsedFile | Finding, size: int) -> None:
        """Keep a tree for later units, within PARSED_BUDGET characters of parsed source."""
        self._parsed_bytes -= self._kept_sizes.pop(path, 0)
        self.parsed[path] = found
        self._kept_sizes[path] = size
        self._parsed_bytes += size
        while self._parsed_bytes > PARSED_BUDGET and len(self.parsed) > 1:
            evicted, _ = self.parsed.popitem(last=False)
            self._parsed_bytes -= self._kept_sizes.pop(evicted, 0)

    def read(self, path: str) -> ParsedFile | None:
        """A file a unit imports names from: its tree when this process has one already (whole, or
        a root's pieces), else parsed piece by piece as names are asked for (kept for later units)."""
        parsed = self.parsed.get(path)
        if isinstance(parsed, ParsedFile):
            return parsed
        if path not in self.partial:
            self.partial[path] = self._read_partially(path)
        return self.partial[path]

    def _read_partially(self, path: str) -> PartialFile | None:
        source = self.files[path]
        tree = python_tree(source) if source.text is not None else None
        if tree is None:
            return None
        self.reach.learn(path, tree)  # CPython's tree is at hand: judge the file's functions from it now
        return PartialFile(source, tree, whole=path in self.roots)

    def _relevant_rules(self, source: SourceFile) -> list[type[Rule]]:
        """The rules whose words the file's code mentions: no other rule could fire in it."""
        if source.path not in self._relevant:
            self._relevant[source.path] = [
                rule for rule in self.rules if self.prefilter.mentions(source, rule.TRIGGERS | rule.SINKS)
            ]
        return self._relevant[source.path]

    def findings_in_checked(self, findings: Sequence[Finding]) -> list[Finding]:
        """Those of `findings` in the checked files."""
        checked = self.checked
        return [found for found in findings if checked is None or found.path in checked]

    def lint_unit(self, root: str) -> UnitResult:
        with recursion_limit(DEEP_RECURSION):
            result = self._lint_unit(root)
        if not gc.isenabled():
            collect_unit_garbage()
        return result

    def _lint_unit(self, root: str) -> UnitResult:
        consulted: set[str] = set()  # files whose functions `Reach` judged for this unit: it depends on them

        def reaches(path: str, name: str) -> bool:
            verdict, read = self.reach.judged(path, name)
            consulted.update(read)
            return verdict

        found = self.parse_root(root, reaches)
        if isinstance(found, Finding):
            return UnitResult((found,), (root,))
        parsed, module = found
        files: dict[str, ParsedFile] = {root: parsed}

        def load(path: str) -> Loaded | None:
            found = self.read(path)
            if found is None:
                return None
            files[path] = found
            return _loaded(found, found.module)

        try:
            root_run = _loaded(parsed, module)
            precision = analyze({root: root_run}, load, self.index, self.words, lambda path: files[path].memo, reaches)
        except RecursionError:  # expressions nested deeper than a recursive walk can follow
            return UnitResult((invalid(root, 1, 1, TOO_DEEP),), (root,))
        findings: list[Finding] = []
        for path, file in list(files.items()):
            if not precision.entered(path):
                continue  # only read for names (class bases, constants): no facts of its own here
            context = FileContext(file, files, precision, lambda: self.imports)
            try:
                self._visit(file, context, module if path == root else file.module, is_root=path == root)
            except RecursionError:  # a rule's own walk, in a deeply nested file
                return UnitResult((invalid(path, 1, 1, TOO_DEEP),), tuple(sorted(files)))
            except Exception as error:  # a rule bug must name the file, not print a traceback
                raise InternalError(path, "a rule failed", error) from error
            findings.extend(context.findings)
        read = {*files, *precision.data_files, *consulted}
        stepped = {
            (files[path].path, *files[path].position(optimizer)[:2])
            for path, optimizer in precision.stepped_with_master_weights()
            if path in files
        }
        return UnitResult(tuple(_unsuppressed(findings, files)), tuple(sorted(read)), tuple(sorted(stepped)))

    def _visit(self, file: ParsedFile, context: FileContext, module: cst.Module, *, is_root: bool) -> None:
        """Run the rules whose words the file mentions (a rule could not fire elsewhere): those that
        read the tree over every node, those that read facts over the nodes this unit evaluated
        (and the module the unit ran: a root's parsed code, or a stand-in for a file read in part)."""
        rules = [rule(context) for rule in self._relevant_rules(file.source)]
        # Syntactic rules walk a file where it is a unit of its own (it is one whenever it mentions
        # their words), never where another unit imports from it: whether that unit holds its whole
        # tree or pieces depends on which units this process ran before, and the findings must not.
        syntactic = [rule for rule in rules if rule.SYNTACTIC and is_root]
        if syntactic:
            visit_rules(functools.partial(self._events_of, file), syntactic)
        order = file.source_order()
        evaluated = sorted(context.precision.evaluated(file.path), key=order.__getitem__)

        def evaluated_events(kinds: frozenset[type]) -> Events:
            nodes: Events = [(node, False) for node in evaluated if type(node) in kinds]
            return [(module, False), *nodes, (module, True)] if cst.Module in kinds else nodes

        visit_rules(evaluated_events, [rule for rule in rules if not rule.SYNTACTIC])

    def _events_of(self, file: ParsedFile, kinds: frozenset[type]) -> Events:
        """The file's tree as (node, leaving) pairs in visit order, only nodes of `kinds`: walked
        once however many units visit the file (its rules, hence `kinds`, are the same each time)."""
        cached = self._events.setdefault(file, {})
        if kinds not in cached:
            events: Events = []
            stack: Events = [(file.module, False)]
            while stack:
                node, leaving = stack.pop()
                if type(node) in kinds:
                    events.append((node, leaving))
                if not leaving:
                    stack.append((node, True))
                    stack.extend((child, False) for child in reversed(children(node)))
            cached[kinds] = events
        return cached[kinds]


def _loaded(file: ParsedFile, module: cst.Module) -> Loaded:
    """What the analysis reads of a file: `module`, and where it is read in part, its parts."""
    if isinstance(file, PartialFile):
        return Loaded(module, file.top_level, file.full_function)
    return Loaded(module)


def check_syntax(source: SourceFile) -> list[Finding]:
    """MP000 for a file no rule needs to analyse, from the same parser as analysed files."""
    refused = syntax_error(source)
    return [refused] if refused is not None else []


def unreadable(source: SourceFile) -> Finding:
    return invalid(source.path, 1, 1, source.error or "cannot read file")


def visit_rules(events: Callable[[frozenset[type]], Events], rules: Sequence[Rule]) -> None:
    """Call each rule's `visit_<Node>` before a node's children and `leave_<Node>` after, replaying
    `events` of only the node types some rule handles."""
    handlers: dict[type, tuple[list[Callable[[cst.CSTNode], None]], list[Callable[[cst.CSTNode], None]]]] = {}
    for rule in rules:
        # The ignore: mypy does not see that a class is Hashable (python/mypy#11470).
        for name in _handled_names(type(rule)):  # type: ignore[arg-type]
            kind = getattr(cst, name)
            visits, leaves = handlers.setdefault(kind, ([], []))
            for prefix, found in (("visit_", visits), ("leave_", leaves)):
                method = getattr(rule, prefix + name, None)
                if method is not None:
                    found.append(method)
    for node, leaving in events(frozenset(handlers)):
        for handler in handlers[type(node)][leaving]:
            handler(node)


@functools.cache
def _handled_names(rule: type[Rule]) -> frozenset[str]:
    """The libcst node type names a rule class has visit_/leave_ methods for."""
    names = frozenset(attr.split("_", 1)[1] for attr in dir(rule) if attr.startswith(("visit_", "leave_")))
    unknown = sorted(name for name in names if not isinstance(getattr(cst, name, None), type))
    assert not unknown, f"{rule.__name__} handles node types that libcst does not have: {unknown}"
    unvisited = sorted(names - _EVALUATED_KINDS) if not rule.SYNTACTIC else []
    assert not unvisited, f"{rule.__name__} reads facts (not SYNTACTIC), so it is never shown {unvisited} nodes"
    return names


# What a rule that reads facts visits: the module, and the nodes that facts are about.
_EVALUATED_KINDS = frozenset({"Module", "Call", "BinaryOperation"})


def _unsuppressed(findings: list[Finding], parsed: dict[str, ParsedFile]) -> list[Finding]:
    findings = sorted(set(findings), key=Finding.sort_key)
    directives: dict[str, dict[int, frozenset[str] | None]] = {}
    kept: list[Finding] = []
    for finding in findings:
        file = parsed.get(finding.path)
        if file is None:
            kept.append(finding)
            continue
        if finding.path not in directives:
            directives[finding.path] = suppression.noqa_directives(file.text)
        if not directives[finding.path]:  # most files: no statement lines to compute
            kept.append(finding)
            continue
        lines = (finding.line, file.statement_line(finding.line))
        if not suppression.is_suppressed(finding.code, lines, directives[finding.path]):
            kept.append(finding)
    return kept
