"""Every autofix against its fixtures: `tests/fixes/<code>/<case>.in.py` fixed by that rule alone
(unsafe fixes included) must read exactly as `<case>.out.py`, and fixing the output again must
change nothing. Then every fix of every rule runs over every input, twice, to catch fixes that
undo or fight each other. A rule's fixture folder is its code in lower case (`mp303/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import libcst as cst
import pytest

from mplint import api
from mplint.fixes import parse_error
from mplint.rule import Autofix
from tests.fixes import support

FIXTURES = Path(__file__).parent


@dataclass(frozen=True)
class Case:
    code: str
    source: Path
    expected: Path

    @property
    def id(self) -> str:
        return f"{self.source.parent.name}/{self.source.name.removesuffix('.in.py')}"


def discover(root: Path) -> list[Case]:
    """Each `<root>/mpNNN/<case>.in.py` with its `.out.py` (a missing one fails its case)."""
    return [
        Case(
            source.parent.name.upper(),
            source,
            source.with_name(source.name[: -len(".in.py")] + ".out.py"),
        )
        for source in sorted(root.glob("mp[0-9][0-9][0-9]/*.in.py"))
    ]


def fixed(source: str, select: str) -> str:
    """`source` after every fix of the selected rules, unsafe ones included."""
    result = api.fix_source(source, "train.py", unsafe=True, select=[select])
    assert not result.notices, result.notices
    return result.changes[0].after if result.changes else source


def check_case(case: Case) -> None:
    assert case.expected.is_file(), f"{case.source.name} has no {case.expected.name} next to it"
    source = case.source.read_text(encoding="utf-8")
    expected = case.expected.read_text(encoding="utf-8")
    assert source != expected, f"{case.id}: the fix must change the input"
    assert fixed(source, case.code) == expected
    assert parse_error(expected) is None
    assert fixed(expected, case.code) == expected, f"{case.id}: fixing the output again changes it"


def check_all_fixes_settle(case: Case) -> None:
    """Every rule's fixes over the input: the result parses and a second run is a no-op."""
    once = fixed(case.source.read_text(encoding="utf-8"), "ALL")
    assert parse_error(once) is None
    assert fixed(once, "ALL") == once


CASES = discover(FIXTURES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_fix_turns_input_into_output(case: Case) -> None:
    check_case(case)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_all_fixes_together_settle_and_parse(case: Case) -> None:
    check_all_fixes_settle(case)


# The runner itself, on fixtures of the test-only rules (tests/fixes/support.py).

CAST_MODEL_IN = """\
import torch

model = build_model().half()  # inference copy
ema = model.bfloat16()
"""

CAST_MODEL_OUT = """\
import torch

model = build_model().to(torch.float16)  # inference copy
ema = model.float()
"""


@pytest.fixture
def example_fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    support.register(monkeypatch, *support.EXAMPLE_RULES)
    for code, case, before, after in [
        (
            "mp990",
            "cast_model",
            CAST_MODEL_IN,
            CAST_MODEL_OUT.replace("model.float()", "model.bfloat16()"),
        ),
        (
            "mp991",
            "cast_model",
            CAST_MODEL_IN,
            CAST_MODEL_OUT.replace(".to(torch.float16)", ".half()"),
        ),
    ]:
        (tmp_path / code).mkdir()
        (tmp_path / code / f"{case}.in.py").write_text(before, encoding="utf-8")
        (tmp_path / code / f"{case}.out.py").write_text(after, encoding="utf-8")
    return tmp_path


def test_runner_finds_each_rules_pairs(example_fixtures: Path) -> None:
    assert [(case.code, case.id) for case in discover(example_fixtures)] == [
        ("MP990", "mp990/cast_model"),
        ("MP991", "mp991/cast_model"),
    ]


def test_runner_applies_only_the_rule_of_the_folder_unsafe_included(example_fixtures: Path) -> None:
    for case in discover(example_fixtures):
        check_case(case)


def test_runner_applies_every_rule_together(example_fixtures: Path) -> None:
    for case in discover(example_fixtures):
        check_all_fixes_settle(case)
    assert fixed(CAST_MODEL_IN, "ALL") == CAST_MODEL_OUT


def test_runner_fails_a_wrong_output(example_fixtures: Path) -> None:
    # What all rules together make of the input, while mp990/ applies MP990's fix alone.
    (example_fixtures / "mp990" / "cast_model.out.py").write_text(CAST_MODEL_OUT, encoding="utf-8")
    with pytest.raises(AssertionError):
        check_case(discover(example_fixtures)[0])


def test_runner_fails_an_input_without_output(example_fixtures: Path) -> None:
    (example_fixtures / "mp990" / "cast_model.out.py").unlink()
    with pytest.raises(AssertionError, match="has no cast_model.out.py"):
        check_case(discover(example_fixtures)[0])


def test_runner_fails_a_fix_that_never_settles(
    example_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Doubling(support.HalfCall):
        """A rule bug: its fix (`.half()` -> `x.half().half()`) is reported and fixed again."""

        def visit_Call(self, node: cst.Call) -> None:
            if support.is_method_call(node, "half"):
                fix = Autofix("double it", (self.replace(node, "x.half().half()"),))
                self.report(node, "double it", fix=fix)

    support.register(monkeypatch, Doubling, support.BFloat16Call)
    with pytest.raises(AssertionError, match="did not settle after 10 passes"):
        check_case(discover(example_fixtures)[0])
