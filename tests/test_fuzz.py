"""Fuzzing, bounded for CI: mplint holds on generated programs and on damaged training code.

The properties and the inputs live in `fuzz/inputs.py`, shared with `fuzz/run_fuzz.py` (the
long runs). Here: every training snippet as written, a few hundred mutations of them, and a
hundred hypothesmith programs; about a minute in all.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from fuzz.inputs import (
    Program,
    check_cli,
    check_program,
    generated_programs,
    mutated_training_code,
    training_snippets,
)

# hypothesmith compiles what it generates, and CPython warns about some of it (`1()`).
pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")

# No example database: it would be an untracked directory in every checkout; a failure prints
# the program and the seed that reproduce it.
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_the_corpus_is_real_training_code() -> None:
    snippets = training_snippets()

    assert len(snippets) > 100
    assert sum("GradScaler" in snippet for snippet in snippets) > 10
    assert sum("log_softmax" in snippet for snippet in snippets) > 10


def test_every_training_snippet_lints_and_fixes_cleanly() -> None:
    checked = [check_program(snippet) for snippet in training_snippets()]

    # The corpus exercises the fixer, not only the linter.
    assert sum(result.fixed for result in checked) > 10
    assert sum(bool(result.findings) for result in checked) > 100


@settings(FUZZ, max_examples=400)
@given(mutated_training_code())
def test_damaged_training_code_lints_and_fixes_without_crashing(
    program: Program,
) -> None:
    check_program(program)


@settings(FUZZ, max_examples=60)
@given(mutated_training_code())
def test_damaged_training_code_exits_0_or_1(program: Program) -> None:
    check_cli(program)


@settings(FUZZ, max_examples=100)
@given(generated_programs())
def test_generated_programs_lint_and_fix_without_crashing(program: str) -> None:
    check_program(program)


@pytest.mark.parametrize(
    "program",
    [
        pytest.param(
            b"import torch\r# bfloat16\nx = 1\ry = 2\r\n", id="cr-lf-and-lone-cr"
        ),
        pytest.param(
            b"\xef\xbb\xbfimport torch\n\xef\xbb\xbfx = 1  # autocast\n",
            id="second-bom",
        ),
        pytest.param(
            b"import torch\nx = torch.zeros(2).half(\x00)\n", id="nul-in-call"
        ),
    ],
)
def test_inputs_the_fuzzers_shrank_to_hold(program: Program) -> None:
    check_program(program)
    check_cli(program)
