"""The base every rule in `mplint.rules` derives from, Fixit style.

A rule module reads top to bottom: the class docstring (What it does / Why is this bad /
Example / Fix, in Markdown; its first line is the one-line summary), `MESSAGE`, `VALID` and
`INVALID` example snippets, then small `visit_*` methods over libcst nodes
(`visit_Call(self, node: cst.Call)`). Rules never walk the tree for dtype facts themselves:
they ask `self.precision` (the shared precision model) and report.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from mplint.findings import Applicability, Severity
from mplint.tree import Located

if TYPE_CHECKING:
    from mplint.analysis.model import PrecisionModel
    from mplint.analysis.values import Origin
    from mplint.run.engine import FileContext


@dataclass(frozen=True)
class Replacement:
    """Put the text `new` from character offset `start` to `end` (exclusive) of the file's text; an
    insertion when they are equal. `Rule.replace`/`Rule.insert` build them from nodes."""

    start: int
    end: int
    new: str


@dataclass(frozen=True)
class Autofix:
    """A fix a rule offers with a finding; the engine turns it into text edits of the file."""

    description: str
    replacements: tuple[Replacement, ...]
    applicability: Applicability = Applicability.SAFE


class Rule:
    CODE: ClassVar[str]
    NAME: ClassVar[str]
    MESSAGE: ClassVar[str] = ""
    SEVERITY: ClassVar[Severity] = Severity.ERROR
    # None when the rule has no autofix; otherwise whether `--fix` applies it by default.
    FIX: ClassVar[Applicability | None] = None
    # Source snippets the rule must stay quiet on / must report (checked by the test suite).
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[str, ...]] = ()
    # Words of which a file must contain at least one for this rule to possibly fire
    # (the engine's text prefilter skips parsing files that mention none of any rule's).
    TRIGGERS: ClassVar[frozenset[str]] = frozenset()
    # Words a file that mentions no trigger must contain to be checked as a *caller* of a file that
    # does (a `train.py` calling a bf16 model factory defined elsewhere).
    SINKS: ClassVar[frozenset[str]] = frozenset()
    # A rule reads facts: it visits only the Call and BinOp nodes the precision model evaluated (the
    # only ones with facts), in source order, with Module first and last. A rule that reads the tree
    # itself (names, imports, class bodies) says so and visits every node of the types it handles.
    SYNTACTIC: ClassVar[bool] = False
    # A finding of the rule at an optimizer's construction holds only if that optimizer steps the half
    # weights themselves: another unit whose framework steps fp32 master weights for it (a
    # LightningModule's `configure_optimizers` fitted by a DeepSpeed Trainer in another file) refutes it.
    NEEDS_HALF_STEPS: ClassVar[bool] = False

    def __init__(self, context: FileContext) -> None:
        self.context = context

    @property
    def precision(self) -> PrecisionModel:
        return self.context.precision

    def report(
        self,
        node: Located,
        message: str,
        *,
        path: str | None = None,
        fix: Autofix | None = None,
        severity: Severity | None = None,
        condition: str | None = None,
    ) -> None:
        """Report `message` at `node` (of this file, or of `path` when the node lives elsewhere),
        optionally with an autofix (its replacements must be of the same file). A finding on a
        path the default configuration skips (`condition`, from its fact) is a warning naming it."""
        if condition is not None:
            message = f"{message} (only when {condition}: not in the default configuration)"
            severity = Severity.WARNING
        self.context.report(self, node, message, path=path, fix=fix, severity=severity)

    # Fixes are text edits of the visited file, built from its nodes' positions and source.
    def source_of(self, node: Located) -> str:
        """`node`'s text as written in the visited file (without enclosing parentheses)."""
        return self.context.parsed.source_of(node)

    def replace(self, node: Located, new: str) -> Replacement:
        """Put `new` where `node`'s text is."""
        return Replacement(*self.context.parsed.offsets(node), new)

    def insert(self, node: Located, text: str, *, after: bool = False) -> Replacement:
        """Put `text` just before `node` (or just after it)."""
        start, end = self.context.parsed.offsets(node)
        at = end if after else start
        return Replacement(at, at, text)

    def line_of(self, node: Located, path: str | None = None) -> int:
        """The 1-based line where `node` (of this file, or of `path`) starts."""
        return self.context.files[path or self.context.path].position(node)[0]

    def describe_origin(self, origin: Origin | None, chain: tuple[str, ...] = ()) -> str:
        """`from `policy`, cast at train.py:5`: where a value's low precision came from, and the
        calls the analysis followed to the op (`via main() → train() → log_probs()`) when it took
        more than one."""
        if origin is None:
            return "origin not traced"
        line = self.line_of(origin.node, origin.path)
        subject = f"from `{origin.subject}`, " if origin.subject else ""
        via = f", via {' → '.join(f'{name}()' for name in chain)}" if len(chain) > 1 else ""
        return f"{subject}{origin.how} at {origin.path}:{line}{via}"

    @classmethod
    def summary(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "").splitlines()[0] if cls.__doc__ else ""

    @classmethod
    def docs(cls) -> str:
        return inspect.cleandoc(cls.__doc__ or "")
