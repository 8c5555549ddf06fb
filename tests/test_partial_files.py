"""A file a unit only imports names from is parsed by libcst one top-level statement at a time,
as the unit asks for names: findings inside it keep their real lines, and nothing else of it is
parsed (checked by counting the pieces parsed, not by a timer)."""

from __future__ import annotations

import ast
import textwrap

from mplint import registry
from mplint.run.engine import Run
from mplint.source import PartialFile, SourceFile

HELPERS = textwrap.dedent(
    """\
    import torch


    def unused_a(x):
        return x * 2


    def gather_logprobs(logits, labels):
        logp = logits.log_softmax(dim=-1)
        return logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


    @torch.no_grad()
    def unused_b(x):
        return x + 1


    SCALE = 2; OFFSET = 3
    """
)

TRAIN = textwrap.dedent(
    """\
    import torch
    from helpers import gather_logprobs

    policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
    logp = gather_logprobs(policy(x), labels)
    """
)


def _run(helpers: str = HELPERS) -> Run:
    files = [SourceFile("helpers.py", helpers), SourceFile("train.py", TRAIN)]
    return Run(files, registry.all_rules())


def test_only_the_statements_binding_the_names_read_are_parsed() -> None:
    run = _run()
    findings = run.lint_unit("train.py").findings
    helpers = run.partial["helpers.py"]

    assert isinstance(helpers, PartialFile)
    assert [first for first, _ in helpers.pieces] == [8]  # `def gather_logprobs`, nothing else
    assert [(f.path, f.line, f.column, f.code) for f in findings] == [("helpers.py", 9, 12, "MP001")]


def test_decorators_and_one_line_statements_belong_to_their_piece() -> None:
    helpers = PartialFile(SourceFile("helpers.py", HELPERS), ast.parse(HELPERS))

    [decorated] = helpers.top_level("unused_b")
    [scale, offset] = helpers.top_level("SCALE")

    assert helpers.position(decorated.decorators[0])[0] == 13  # the piece starts at `@torch.no_grad()`
    assert helpers.position(decorated)[0] == 14  # the `def` line, as for a whole file
    assert (helpers.position(scale)[:2], helpers.position(offset)[:2]) == ((18, 1), (18, 12))
    assert helpers.top_level("OFFSET") == [scale, offset]  # parsed once, shared by both names
    assert [first for first, _ in helpers.pieces] == [13, 18]


def test_noqa_in_a_partially_read_helper_is_honoured() -> None:
    quiet = HELPERS.replace("log_softmax(dim=-1)", "log_softmax(dim=-1)  # noqa: MP001")
    assert _run(quiet).lint_unit("train.py").findings == ()
