"""Which functions of other files a standalone run follows (`run.reach.Reach`): those that may
lead to a rule's word, judged from CPython's ast, re-exports and calls followed."""

from __future__ import annotations

import textwrap

from mplint.analysis.project import ModuleIndex
from mplint.run.reach import Reach

WORDS = ("bfloat16", "log_softmax", "optim", ".step(")


def reach(files: dict[str, str]) -> Reach:
    texts = {path: textwrap.dedent(text) for path, text in files.items()}
    return Reach(ModuleIndex(list(texts), texts.get), WORDS)


PROJECT = {
    "models.py": """
        import torch

        def build_model(config):
            return Model(config).to(torch.bfloat16)

        def count_parameters(model):
            # bfloat16 in a comment is no code
            return sum(p.numel() for p in model.parameters())

        def describe(model):
            \"\"\"Says nothing of log_softmax.\"\"\"
            return summary(model)

        def summary(model):
            return str(model)

        def recursive(depth):
            return recursive(depth - 1) if depth else None
        """,
    "losses.py": """
        import torch.nn.functional as F

        def token_logprobs(logits, labels):
            return F.log_softmax(logits, -1).gather(-1, labels[..., None])

        def sequence_logprobs(logits, labels):
            return token_logprobs(logits, labels).sum(-1)
        """,
    "training/__init__.py": """
        from ..models import build_model, count_parameters
        from ..losses import sequence_logprobs as logprobs
        """,
    "training/steps.py": """
        from . import build_model, logprobs, count_parameters
        from .schedule import make_schedule

        def step(model, batch, opt):
            loss = -logprobs(model(batch), batch).mean()
            loss.backward()
            opt.step()

        def report(model):
            return count_parameters(model)

        if HAVE_APEX:
            def fused(x):
                return x
        else:
            from apex import fused
        """,
}


def test_a_function_that_mentions_a_word_is_followed() -> None:
    judged = reach(PROJECT)
    assert judged.may_reach("models.py", "build_model")
    assert judged.may_reach("losses.py", "token_logprobs")


def test_a_function_that_calls_one_that_mentions_a_word_is_followed() -> None:
    assert reach(PROJECT).may_reach("losses.py", "sequence_logprobs")


def test_a_function_whose_words_are_only_in_comments_or_docstrings_is_not_followed() -> None:
    judged = reach(PROJECT)
    assert not judged.may_reach("models.py", "count_parameters")
    assert not judged.may_reach("models.py", "describe")  # its callee mentions nothing either


def test_recursion_without_a_word_is_not_followed() -> None:
    assert not reach(PROJECT).may_reach("models.py", "recursive")


def test_re_exports_and_aliases_are_followed_to_the_definition() -> None:
    judged = reach(PROJECT)
    assert judged.may_reach("training/__init__.py", "logprobs")
    assert judged.may_reach("training/steps.py", "logprobs")
    assert judged.may_reach("training/steps.py", "build_model")
    assert not judged.may_reach("training/steps.py", "count_parameters")


def test_method_words_count_as_calls_only() -> None:
    judged = reach(PROJECT)
    assert judged.may_reach("training/steps.py", "step")  # `opt.step()`, and logprobs
    assert not judged.may_reach("training/steps.py", "report")


def test_what_the_table_cannot_judge_is_followed() -> None:
    judged = reach({**PROJECT, "broken.py": "def f(:\n    pass\n"})
    assert judged.may_reach("training/steps.py", "fused")  # bound in both branches of an if
    assert judged.may_reach("training/steps.py", "make_schedule")  # a file outside the run
    assert judged.may_reach("broken.py", "f")  # a file CPython cannot parse
    assert judged.may_reach("models.py", "undefined_here")  # a submodule, or a star import


def test_a_unit_does_not_parse_files_only_unworthy_functions_call_but_depends_on_them() -> None:
    from mplint.registry import all_rules
    from mplint.run.discovery import decode_source
    from mplint.run.engine import Run

    sources = {
        "train.py": """
            import torch
            from helpers import format_metrics
            from models import build_model

            def log_step(metrics):
                print(format_metrics(metrics))

            def main():
                model = build_model().to(torch.bfloat16)
            """,
        "helpers.py": """
            def format_metrics(metrics):
                return ", ".join(f"{k}={v:.3f}" for k, v in metrics.items())
            """,
        "models.py": """
            import torch

            def build_model():
                return torch.nn.Linear(8, 8)
            """,
    }
    files = [decode_source(textwrap.dedent(text).encode(), path) for path, text in sources.items()]
    run = Run(files, all_rules())
    read = run.lint_unit("train.py").read
    assert "models.py" in run.partial  # main() follows build_model: its file is parsed
    assert "helpers.py" not in run.partial  # log_step() mentions no word and calls none: not analysed
    # The unit still depends on what helpers.py says: a word added there would change the verdict.
    assert {"train.py", "models.py", "helpers.py"} <= set(read)
