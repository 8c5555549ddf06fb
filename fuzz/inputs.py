"""What the fuzzers feed mplint, and what must hold for every input.

Two sources of programs: hypothesmith's valid Python (with a trailing line of code naming every
rule's trigger words, so the prefilter lets the precision model and all rules see them), and
mutations of real training code: the rule-test snippets in `tests/rules/test_mp*.py`, the
fix fixtures and `examples/*.py`, with lines deleted, duplicated or pasted from another
snippet, identifiers swapped, bytes flipped, line endings mixed, or the text cut short.
`check_program` states the properties; the test suite (`tests/test_fuzz.py`) and the
long-running script (`fuzz/run_fuzz.py`) both call it.
"""

from __future__ import annotations

import ast
import functools
import keyword
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import hypothesmith
from click.testing import CliRunner
from hypothesis import strategies as st

from mplint import api
from mplint.cli import main
from mplint.findings import Finding
from mplint.registry import all_rules

REPOSITORY = Path(__file__).resolve().parent.parent
LINTED_AS = "train.py"
ALL_RULES = ("ALL",)

Program = Union[str, bytes]


@functools.cache
def trigger_line() -> str:
    """An assignment whose string mentions every rule's trigger and sink words (code, not a
    comment: the prefilter reads code only), so the precision model and every rule see the file."""
    words = sorted(
        {word for rule in all_rules() for word in rule.TRIGGERS | rule.SINKS}
    )
    return f"_rule_words = {' '.join(words)!r}\n"


@functools.cache
def training_snippets() -> tuple[str, ...]:
    """Real training code: every multi-line string in the rule tests that parses as a program
    mentioning torch, the fix fixtures' inputs, and the examples; sorted, so runs replay."""
    found: set[str] = set()
    for test in sorted((REPOSITORY / "tests" / "rules").glob("test_mp*.py")):
        for node in ast.walk(ast.parse(test.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "\n" in node.value
            ):
                snippet = textwrap.dedent(node.value)
                if "torch" in snippet and _parses(snippet):
                    found.add(snippet)
    for pattern in ("tests/fixes/*/*.in.py", "examples/*.py"):
        found.update(
            path.read_text(encoding="utf-8") for path in REPOSITORY.glob(pattern)
        )
    return tuple(sorted(found))


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def _identifiers(source: str) -> list[str]:
    """The distinct names (not keywords) of `source`, in order of first use."""
    names = re.findall(r"\b[A-Za-z_][A-Za-z_0-9]*\b", source)
    return list(dict.fromkeys(name for name in names if not keyword.iskeyword(name)))


@st.composite
def _delete_lines(draw: st.DrawFn, source: str) -> str:
    lines = source.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 3))):
        if lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
    return "".join(lines)


@st.composite
def _duplicate_line(draw: st.DrawFn, source: str) -> str:
    lines = source.splitlines(keepends=True) or [""]
    line = draw(st.sampled_from(lines))
    lines.insert(draw(st.integers(0, len(lines))), line)
    return "".join(lines)


@st.composite
def _splice(draw: st.DrawFn, source: str) -> str:
    """A run of lines from another snippet pasted in: code from two scripts merged by hand."""
    lines = source.splitlines(keepends=True)
    donor = draw(st.sampled_from(training_snippets())).splitlines(keepends=True) or [""]
    start = draw(st.integers(0, len(donor) - 1))
    end = draw(st.integers(start + 1, len(donor)))
    at = draw(st.integers(0, len(lines)))
    return "".join(lines[:at] + donor[start:end] + lines[at:])


@st.composite
def _swap_identifiers(draw: st.DrawFn, source: str) -> str:
    """Exchange two names everywhere (`model` and `scaler`), or replace one use of a name by
    another: the shapes a half-finished refactoring leaves."""
    names = _identifiers(source)
    if len(names) < 2:
        return source
    first, second = draw(
        st.lists(st.sampled_from(names), min_size=2, max_size=2, unique=True)
    )
    if draw(st.booleans()):
        swapped = {first: second, second: first}
        return re.sub(
            rf"\b(?:{first}|{second})\b", lambda m: swapped[m.group()], source
        )
    uses = [match.span() for match in re.finditer(rf"\b{first}\b", source)]
    start, end = draw(st.sampled_from(uses))
    return source[:start] + second + source[end:]


@st.composite
def _flip_bytes(draw: st.DrawFn, source: str) -> bytes:
    data = bytearray(source.encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@st.composite
def _mix_line_endings(draw: st.DrawFn, source: str) -> str:
    """Some lines ending in `\\r\\n` or a lone `\\r`: files edited on two systems."""
    lines = source.split("\n")
    endings = draw(
        st.lists(
            st.sampled_from(["\n", "\r\n", "\r"]),
            min_size=len(lines) - 1,
            max_size=len(lines) - 1,
        )
    )
    return (
        "".join(line + ending for line, ending in zip(lines[:-1], endings)) + lines[-1]
    )


@st.composite
def _truncate(draw: st.DrawFn, source: str) -> str:
    return source[: draw(st.integers(0, len(source)))]


_MUTATIONS = (
    _delete_lines,
    _duplicate_line,
    _splice,
    _swap_identifiers,
    _flip_bytes,
    _mix_line_endings,
    _truncate,
)


@st.composite
def mutated_training_code(draw: st.DrawFn) -> Program:
    """A training snippet after one to three mutations (a byte flip makes it bytes)."""
    program: Program = draw(st.sampled_from(training_snippets()))
    for _ in range(draw(st.integers(1, 3))):
        if isinstance(program, bytes):
            break
        program = draw(draw(st.sampled_from(_MUTATIONS))(program))
    return program


def generated_programs() -> st.SearchStrategy[str]:
    """Valid Python from hypothesmith (its grammar- and its libcst-node-based generators), made
    to mention every trigger word."""
    programs = st.one_of(hypothesmith.from_grammar(), hypothesmith.from_node())
    return programs.map(
        lambda program: (
            program + ("" if program.endswith("\n") else "\n") + trigger_line()
        )
    )


@dataclass(frozen=True)
class Checked:
    """What one program gave: its findings, and how many fixes changed it."""

    findings: tuple[Finding, ...]
    fixed: int


def check_program(program: Program) -> Checked:
    """The properties every input must have; an AssertionError or any exception is a crash.

    Linting returns findings (MP000 when the input cannot be read or parsed); fixing with every
    fix, unsafe ones included, gives text that parses, a second fix of it changes nothing, and
    no fix is refused (a refusal is a rule bug mplint asks users to report).
    """
    findings = api.lint_source(program, LINTED_AS, select=ALL_RULES)
    assert all(isinstance(finding, Finding) for finding in findings)
    fixed = api.fix_source(program, LINTED_AS, unsafe=True, select=ALL_RULES)
    assert not fixed.notices, fixed.notices
    for change in fixed.changes:
        ast.parse(change.after)  # raises when a fix broke the file
        again = api.fix_source(change.after, LINTED_AS, unsafe=True, select=ALL_RULES)
        assert not again.changes, (
            f"a second fix changed the text again:\n{change.after}"
        )
    return Checked(tuple(findings), fixed.fixed)


def check_cli(program: Program) -> int:
    """`mplint --select ALL -` on the program: 0 or 1, never 2 (an internal error)."""
    data = program if isinstance(program, bytes) else program.encode("utf-8")
    result = CliRunner().invoke(
        main,
        ["check", "--select", "ALL", "--stdin-filename", LINTED_AS, "-"],
        input=data,
    )
    assert result.exit_code in (0, 1), f"exit {result.exit_code}: {result.output}"
    return result.exit_code
