"""The one currency of the tool: every check, static or runtime, produces `Finding`s."""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


class Applicability(str, enum.Enum):
    """Whether `--fix` may apply a fix on its own (safe) or only with `--unsafe-fixes`."""

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Edit:
    """Replace the text from (line, column) up to (end_line, end_column): 1-based, end exclusive."""

    line: int
    column: int
    end_line: int
    end_column: int
    replacement: str


@dataclass(frozen=True)
class Fix:
    """What `--fix` does for one finding: one or more non-overlapping edits of the finding's file."""

    description: str
    applicability: Applicability
    edits: tuple[Edit, ...]


# (path, line, column): where a node starts, as a finding would name it.
Place = tuple[str, int, int]


@dataclass(frozen=True)
class Finding:
    """One problem at one place. `column`/`end_column` are 1-based, as editors show them."""

    code: str
    name: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    severity: Severity = Severity.ERROR
    fix: Fix | None = field(default=None, compare=False)
    # Set by the runtime verifier only: "confirmed" / "refuted" / "not-reached" / "runtime-only",
    # what it saw, and where it ran ("cuda", "cpu", "emulated-cuda").
    verdict: str | None = None
    evidence: tuple[str, ...] = ()
    device: str | None = None
    # Other routes to the same problem at the same place (another caller, another origin), as
    # their messages: one finding per code and place, the rest told alongside it.
    related: tuple[str, ...] = field(default=(), compare=False)

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.path, self.line, self.column, self.code, self.message)

    def verdict_note(self) -> str:
        """`confirmed: <evidence>; <evidence> (on emulated-cuda)`, as every format tells a runtime verdict;
        empty for a finding the runtime verifier did not judge."""
        if self.verdict is None:
            return ""
        note = self.verdict
        if self.evidence:
            note += ": " + "; ".join(self.evidence)
        if self.device is not None:
            note += f" (on {self.device})"
        return note


def merge_routes(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per code and place, in order: where several units or callers reach the same
    op (a helper called from two scripts), the first message stands and the others become its
    `related` notes."""
    merged: dict[tuple[str, int, int, int, int, str], Finding] = {}
    for finding in sorted(findings, key=Finding.sort_key):
        place = (finding.path, finding.line, finding.column, finding.end_line, finding.end_column, finding.code)
        first = merged.get(place)
        if first is None:
            merged[place] = finding
        elif finding.message != first.message and finding.message not in first.related:
            merged[place] = replace(first, related=(*first.related, finding.message))
    return list(merged.values())


@dataclass(frozen=True)
class RuleCount:
    """How many findings one rule has (`--statistics`), and whether some of them have a fix."""

    code: str
    name: str
    count: int
    fixable: bool


def counts_by_rule(findings: Sequence[Finding]) -> tuple[RuleCount, ...]:
    """One count per rule that has findings, the most frequent first (then by code)."""
    counts = Counter((finding.code, finding.name) for finding in findings)
    fixable = {finding.code for finding in findings if finding.fix is not None}
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(RuleCount(code, name, count, code in fixable) for (code, name), count in rows)
