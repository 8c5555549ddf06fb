"""Apply the fixes rules offer: text edits, pass after pass, re-parsed, written atomically.

A pass applies every applicable fix whose edits overlap none already accepted in that pass;
the ones left out (and any a fix makes possible) are found by linting the fixed text again,
until nothing applicable remains or `MAX_PASSES` is reached. A file whose fixed text would
not parse is refused and left as it was. Columns are characters of the line (a tab or a non-ASCII
character is one), and lines end only at `\\r\\n`, `\\r` or `\\n`, as Python's tokenizer ends them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import os
import re
import stat
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mplint.errors import InternalError
from mplint.findings import Applicability, Finding, Fix
from mplint.text import SourceFile, split_lines

# A fix that keeps producing new fixes is a rule bug; stop instead of looping forever.
MAX_PASSES = 10

Lint = Callable[[Sequence[SourceFile]], Sequence[Finding]]

_NEWLINE = re.compile(r"\r\n|\r|\n")


class FixRefused(Exception):
    """A file's fixes cannot be written; the message says why, in one line."""


@dataclass(frozen=True)
class FileFix:
    """One file's text before and after its fixes, and how many findings they fixed."""

    path: str
    before: str
    after: str
    fixed: int


@dataclass(frozen=True)
class FixResult:
    # What remains to report once the fixes are applied (unapplied fixes hidden per `unsafe`).
    findings: tuple[Finding, ...]
    files_checked: int
    changes: tuple[FileFix, ...]
    # One line per file whose fixes were not applied, or that needs a look, and why.
    notices: tuple[str, ...] = ()

    @property
    def fixed(self) -> int:
        return sum(change.fixed for change in self.changes)


def is_applicable(fix: Fix | None, unsafe: bool) -> bool:
    return fix is not None and (unsafe or fix.applicability is Applicability.SAFE)


def visible(findings: Iterable[Finding], unsafe: bool) -> tuple[Finding, ...]:
    """The findings with only the fixes these options would apply: ruff shows an unsafe fix as
    available only under `--unsafe-fixes`."""
    return tuple(
        finding if finding.fix is None or is_applicable(finding.fix, unsafe) else dataclasses.replace(finding, fix=None)
        for finding in findings
    )


def apply_fixes(text: str, fixes: Sequence[Fix]) -> tuple[str, tuple[Fix, ...]]:
    """`text` with those of `fixes` applied that change it and whose edits overlap neither each
    other nor those of a fix accepted before them (in order of position); returns the text and
    the fixes applied. An edit outside the text is a rule bug: ValueError."""
    lines = split_lines(text)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    newline = _first_newline(lines)

    def offset(line: int, column: int) -> int:
        if not 1 <= line <= len(lines) + 1:
            raise ValueError(f"edit at line {line} is outside the file ({len(lines)} lines)")
        width = len(lines[line - 1]) if line <= len(lines) else 0
        if not 1 <= column <= width + 1:
            raise ValueError(f"edit at {line}:{column} is outside its line")
        return starts[line - 1] + column - 1

    edits_of = {
        fix: sorted(
            (
                offset(e.line, e.column),
                offset(e.end_line, e.end_column),
                _NEWLINE.sub(newline, e.replacement),
            )
            for e in fix.edits
        )
        for fix in dict.fromkeys(fixes)
    }
    # A fix that changes nothing is not applied: it would only block the fixes it overlaps.
    changing = [fix for fix, edits in edits_of.items() if any(text[start:end] != new for start, end, new in edits)]
    accepted: list[Fix] = []
    taken: list[tuple[int, int]] = []
    # By position, then by text, so the same findings always yield the same fixed file.
    for fix in sorted(changing, key=lambda fix: edits_of[fix]):
        spans = [(start, end) for start, end, _ in edits_of[fix]]
        if any(end < start for start, end in spans) or any(
            _overlap(span, other) for i, span in enumerate(spans) for other in [*taken, *spans[i + 1 :]]
        ):
            continue
        accepted.append(fix)
        taken.extend(spans)

    pieces: list[str] = []
    position = 0
    for start, end, replacement in sorted(edit for fix in accepted for edit in edits_of[fix]):
        pieces += [text[position:start], replacement]
        position = end
    pieces.append(text[position:])
    return "".join(pieces), tuple(accepted)


def fix_sources(sources: Sequence[SourceFile], lint: Lint, *, unsafe: bool) -> FixResult:
    """Fix `sources` in memory: lint them together, apply, lint the fixed texts again, repeat."""
    original = {source.path: source.text for source in sources if source.text is not None}
    current = dict(original)
    fixed = dict.fromkeys(original, 0)
    frozen: set[str] = set()  # refused files: linted as they were, never fixed again
    notices: list[str] = []
    findings = lint(sources)
    for _ in range(MAX_PASSES):
        by_path: dict[str, list[Finding]] = {}
        for finding in findings:
            if is_applicable(finding.fix, unsafe) and finding.path in current and finding.path not in frozen:
                by_path.setdefault(finding.path, []).append(finding)
        changed = False
        for path, fixable in by_path.items():
            try:
                text, accepted = apply_fixes(current[path], [f.fix for f in fixable if f.fix])
            except ValueError as error:  # a rule's edit outside the file: name the file
                raise InternalError(path, "applying a fix failed", error) from error
            if text == current[path]:
                continue
            problem = parse_error(text)
            if problem is not None:
                notices.append(
                    f"{path}: fixes not applied: the fixed text would not parse ({problem}); "
                    "please report this mplint bug"
                )
                current[path], fixed[path] = original[path], 0
                frozen.add(path)
            else:
                current[path] = text
                fixed[path] += sum(1 for finding in fixable if finding.fix in accepted)
            changed = True
        if not changed:
            break
        findings = lint(_with_texts(sources, current))
    else:
        unsettled = sorted({f.path for f in findings if is_applicable(f.fix, unsafe) and f.path not in frozen})
        notices += [
            f"{path}: fixes did not settle after {MAX_PASSES} passes; please report this mplint bug"
            for path in unsettled
        ]
    changes = tuple(
        FileFix(path, original[path], current[path], fixed[path])
        for path in original
        if current[path] != original[path]
    )
    return FixResult(visible(findings, unsafe), len(sources), changes, tuple(notices))


def write_fixes(result: FixResult, sources: Sequence[SourceFile], lint: Lint, *, unsafe: bool) -> FixResult:
    """Write each changed file atomically; a file that cannot be written stays as it was, and
    then what remains is linted again from the texts now on disk."""
    written, notices = [], list(result.notices)
    for change in result.changes:
        try:
            write_fixed(change.path, change.before, change.after)
        except FixRefused as refusal:
            notices.append(f"{change.path}: fixes not written: {refusal}")
        else:
            written.append(change)
    if len(written) == len(result.changes):
        return dataclasses.replace(result, notices=tuple(notices))
    on_disk = {change.path: change.after for change in written}
    findings = visible(lint(_with_texts(sources, on_disk)), unsafe)
    return FixResult(findings, result.files_checked, tuple(written), tuple(notices))


def write_fixed(path: str | os.PathLike[str], before: str, after: str) -> None:
    """Replace the file's text `before` by `after`, in its own encoding (a BOM stays), unless
    someone changed it since it was read; raises FixRefused, leaving the file as it was."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise FixRefused(f"cannot read it again: {error.strerror}") from error
    encoding = source_encoding(data)
    now = data.decode(encoding, errors="replace")
    if now == after:  # another run (a concurrent `mplint --fix`) got there first
        return
    if now != before:
        raise FixRefused("it changed while mplint was fixing it")
    if not os.stat(path).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise FixRefused("it is read-only")
    try:
        new = after.encode(encoding)
    except UnicodeEncodeError as error:
        raise FixRefused(f"the fixed text cannot be encoded as {encoding}: {error.reason}") from error
    try:
        write_atomically(path, new)
    except OSError as error:
        raise FixRefused(f"cannot write it: {error.strerror or error}") from error


def source_encoding(data: bytes) -> str:
    """The encoding Python reads `data` with: `utf-8-sig` when it has a BOM, so encoding with it
    writes the BOM back."""
    try:
        return tokenize.detect_encoding(io.BytesIO(data).readline)[0]
    except SyntaxError:
        return "utf-8"


def write_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write through a temporary file in the same directory and rename it over the target, so a
    crash leaves the old file or the new one, never half of one. The file keeps its mode, and a
    symlink keeps pointing at the file it names, which is the one written."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".mplint")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(target.parent)


def unified_diff(change: FileFix) -> str:
    """The change as `git diff` shows it, with `a/` and `b/` headers."""
    lines = difflib.unified_diff(
        split_lines(change.before), split_lines(change.after), f"a/{change.path}", f"b/{change.path}"
    )
    return "".join(line if line.endswith(("\n", "\r")) else line + "\n\\ No newline at end of file\n" for line in lines)


def parse_error(text: str) -> str | None:
    """Why `text` does not parse (as mplint parses files), in one line; None when it does."""
    from mplint.source import parse  # libcst: imported by fixing, not by what only shows findings

    tree = parse(SourceFile("<fixed>", text))
    return f"line {tree.line}: {tree.message}" if isinstance(tree, Finding) else None


def _first_newline(lines: Sequence[str]) -> str:
    """The file's line ending: that of its first line (`\\n` when none)."""
    for line in lines:
        match = _NEWLINE.search(line)
        if match:
            return match.group()
    return "\n"


def _overlap(first: tuple[int, int], second: tuple[int, int]) -> bool:
    """Whether two edits touch the same text; two insertions at one point conflict too, since
    their order would be a guess."""
    return max(first[0], second[0]) < min(first[1], second[1]) or first[0] == second[0]


def _with_texts(sources: Sequence[SourceFile], texts: dict[str, str]) -> list[SourceFile]:
    return [
        dataclasses.replace(source, text=texts[source.path]) if source.path in texts else source for source in sources
    ]


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); where directories cannot be opened, skip it."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
