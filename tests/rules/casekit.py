"""Rule cases as annotated source: the expected findings are marked on the lines they belong to.

A case is a Python snippet, written the way training code is written. Every line where a
finding must be reported ends with a marker comment, `# expect: MP001` (or a comma list,
`# expect: MP001, MP003`); a case without a marker for the rule under test must stay quiet.
`check` lints one snippet as `train.py`, `check_files` lints a small project laid out on disk
(the run sees every file, as `mplint src/` would), and both compare the reported
(path, line, code) set with the marked one, showing the annotated source when they differ.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mplint.api import lint_paths, lint_source
from mplint.findings import Finding

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet

SNIPPET_PATH = "train.py"
_MARKER = re.compile(r"#\s*expect:\s*(?P<codes>MP\d{3}(?:\s*,\s*MP\d{3})*)\s*$")


def bug(case_id: str, source: str) -> ParameterSet:
    """A case that must be reported: at least one line carries an `# expect:` marker."""
    if not marked_lines(source):
        raise ValueError(
            f"case {case_id!r} is a bug but marks no line with '# expect: MPxxx'"
        )
    return pytest.param(source, id=f"bug-{case_id}")


def ok(case_id: str, source: str) -> ParameterSet:
    """A case that must stay quiet: no line carries a marker."""
    if marked_lines(source):
        raise ValueError(f"case {case_id!r} is meant to be quiet but marks a line")
    return pytest.param(source, id=f"ok-{case_id}")


def marked_lines(source: str) -> set[tuple[int, str]]:
    """The (line, code) pairs marked in `source`, 1-based as the linter counts lines."""
    marked = set()
    for number, line in enumerate(textwrap.dedent(source).splitlines(), start=1):
        match = _MARKER.search(line)
        if match:
            marked.update((number, code.strip()) for code in match["codes"].split(","))
    return marked


def line_of(source: str, text: str) -> int:
    """The 1-based line of the first line of the dedented `source` that contains `text`."""
    for number, line in enumerate(textwrap.dedent(source).splitlines(), start=1):
        if text in line:
            return number
    raise ValueError(f"{text!r} does not occur in the case")


def lint(source: str, code: str) -> list[Finding]:
    """The findings of rule `code` on the dedented snippet, linted as `train.py`."""
    return lint_source(textwrap.dedent(source), path=SNIPPET_PATH, select=[code])


def check(source: str, code: str) -> None:
    """Rule `code` reports exactly the lines of `source` marked for it."""
    findings = [finding for finding in lint(source, code) if finding.code == code]
    expected = {
        (SNIPPET_PATH, line, marked)
        for line, marked in marked_lines(source)
        if marked == code
    }
    reported = {(SNIPPET_PATH, finding.line, finding.code) for finding in findings}
    assert reported == expected, _explain(
        {SNIPPET_PATH: source}, expected, findings, relative=str
    )


def check_files(files: Mapping[str, str], code: str, root: Path) -> None:
    """Rule `code`, run over the project `files` (relative path -> source) written under
    `root`, reports exactly the (path, line) pairs marked for it in those files."""
    for name, source in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(source), encoding="utf-8")
    base = root.resolve()

    def relative(path: str) -> str:
        return Path(path).resolve().relative_to(base).as_posix()

    findings = [
        finding
        for finding in lint_paths([root], select=[code]).findings
        if finding.code == code
    ]
    expected = {
        (name, line, marked)
        for name, source in files.items()
        for line, marked in marked_lines(source)
        if marked == code
    }
    reported = {
        (relative(finding.path), finding.line, finding.code) for finding in findings
    }
    assert reported == expected, _explain(files, expected, findings, relative=relative)


def _explain(
    files: Mapping[str, str],
    expected: set[tuple[str, int, str]],
    findings: list[Finding],
    *,
    relative: Callable[[str], str],
) -> str:
    """The annotated sources: `+` a marked line that was not reported, `!` an unmarked one that was."""
    reported = {(relative(finding.path), finding.line) for finding in findings}
    wanted = {(path, line) for path, line, _ in expected}
    messages = {(relative(f.path), f.line): f"{f.code} {f.message}" for f in findings}
    out = []
    for name, source in files.items():
        out.append(f"--- {name}")
        for number, line in enumerate(textwrap.dedent(source).splitlines(), start=1):
            key = (name, number)
            flag = (
                "+"
                if key in wanted - reported
                else "!"
                if key in reported - wanted
                else " "
            )
            out.append(f"{flag}{number:3} {line}")
            if key in messages:
                out.append(f"       ^ {messages[key]}")
    return "\n".join(
        [
            "reported findings differ from the marked ones (+ missed, ! unexpected):",
            *out,
        ]
    )
