"""`# noqa` comments are read like flake8 and ruff read them, and never crash on bad input."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mplint.suppression import is_suppressed, noqa_directives


def directives_of(source: str) -> dict[int, frozenset[str] | None]:
    return noqa_directives(textwrap.dedent(source))


@pytest.mark.parametrize(
    ("comment", "codes"),
    [
        ("# noqa: MP001", {"MP001"}),
        ("# noqa: MP001,MP002", {"MP001", "MP002"}),
        ("# noqa: MP001, MP002", {"MP001", "MP002"}),
        ("# noqa:MP001 MP002", {"MP001", "MP002"}),
        ("#noqa:mp003", {"MP003"}),
        ("# NOQA: MP001", {"MP001"}),
        ("# noqa: MP001 -- logits are upcast inside the loss", {"MP001"}),
        ("# type: ignore[attr-defined]  # noqa: MP002", {"MP002"}),
    ],
)
def test_codes_after_the_colon_are_the_ones_silenced(comment: str, codes: set[str]) -> None:
    source = f"logp = F.log_softmax(logits, dim=-1)  {comment}\n"

    assert noqa_directives(source) == {1: frozenset(codes)}


@pytest.mark.parametrize("comment", ["# noqa", "# NoQA", "# noqa  because this is a probe"])
def test_a_bare_noqa_silences_everything(comment: str) -> None:
    directives = noqa_directives(f"optimizer = AdamW(model.parameters())  {comment}\n")

    assert directives == {1: None}
    assert is_suppressed("MP003", [1], directives)
    assert is_suppressed("MP000", [1], directives)


def test_noqa_inside_strings_does_not_count() -> None:
    directives = directives_of(
        '''\
        banner = "run with # noqa: MP001 to silence"
        doc = """
        # noqa
        """
        logp = F.log_softmax(logits, dim=-1)  # noqa: MP001
        '''
    )

    assert directives == {5: frozenset({"MP001"})}


def test_other_comments_are_not_directives() -> None:
    assert directives_of("x = 1  # noqa-ish: MP001\n") == {}
    assert directives_of("x = 1  # see noqa docs\n") == {}


def test_the_reported_line_or_the_statements_first_line_silences() -> None:
    directives = directives_of(
        """\
        logp = F.log_softmax(  # noqa: MP001
            policy(input_ids).logits,
            dim=-1,
        )
        loss = F.log_softmax(
            policy(input_ids).logits, dim=-1  # noqa: MP001
        )
        """
    )

    # The engine passes the reported line and the first line of the enclosing statement.
    assert is_suppressed("MP001", [2, 1], directives)
    assert is_suppressed("MP001", [6, 5], directives)
    assert not is_suppressed("MP001", [7, 5], directives)


def test_a_directive_for_another_code_does_not_silence() -> None:
    directives = noqa_directives("logp = F.log_softmax(logits, dim=-1)  # noqa: MP002,MP003\n")

    assert not is_suppressed("MP001", [1], directives)
    assert is_suppressed("mp002", [1], directives)


def test_unterminated_source_falls_back_to_reading_lines() -> None:
    directives = directives_of(
        """\
        logp = F.log_softmax(logits, dim=-1)  # noqa: MP001
        broken = (
        """
    )

    assert directives == {1: frozenset({"MP001"})}


@given(st.text(), st.sampled_from(["# noqa", "# noqa: MP001", "#NOQA:mp002 "]), st.text())
def test_any_text_yields_directives_without_raising(before: str, comment: str, after: str) -> None:
    directives = noqa_directives(before + comment + after)

    assert all(line >= 1 for line in directives)
