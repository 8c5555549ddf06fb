"""MP303 log-of-softmax: a log taken directly of a softmax, in any precision.

Reported at the log call, with a safe fix to the matching `log_softmax` (same alias, same
arguments). Guarded logs (`+ 1e-8`, `.clamp(...)`) and softmaxes bound to a name first stay quiet.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP303"

CASES = [
    bug(
        "functional-softmax-in-torch-log",
        """
        import torch
        import torch.nn.functional as F

        def distillation_loss(student_logits, teacher_probs):
            log_probs = torch.log(F.softmax(student_logits, dim=-1))  # expect: MP303
            return -(teacher_probs * log_probs).sum(dim=-1).mean()
    """,
    ),
    bug(
        "method-chain-log",
        """
        import torch

        class Classifier(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = torch.nn.Linear(128, 10)

            def forward(self, x):
                return self.fc(x).softmax(-1).log()  # expect: MP303
    """,
    ),
    bug(
        "torch-softmax-with-dtype",
        """
        import torch

        def kl(p_logits, q_logits):
            log_p = torch.log(torch.softmax(p_logits, dim=1, dtype=torch.float32))  # expect: MP303
            return torch.nn.functional.kl_div(log_p, q_logits.softmax(1), reduction="batchmean")
    """,
    ),
    bug(
        "functional-softmax-then-log-method",
        """
        import torch.nn.functional as nnf

        attn_logp = nnf.softmax(scores / temperature, dim=-1).log()  # expect: MP303
    """,
    ),
    bug(
        "log-of-method-softmax-in-loss",
        """
        import torch

        for images, labels in loader:
            scores = model(images)
            loss = torch.nn.functional.nll_loss(torch.log(scores.softmax(dim=1)), labels)  # expect: MP303
            loss.backward()
    """,
    ),
    bug(
        "imported-softmax-name",
        """
        import torch
        from torch.nn.functional import softmax

        policy_logp = torch.log(softmax(policy_logits, dim=-1))  # expect: MP303
    """,
    ),
    bug(
        "half-logits-both-codes",
        """
        import torch
        import torch.nn.functional as F
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(ckpt, torch_dtype=torch.float16)
        logits = model(**inputs).logits
        log_probs = torch.log(F.softmax(logits, dim=-1))  # expect: MP303
    """,
    ),
    ok(
        "log-softmax-already",
        """
        import torch.nn.functional as F

        log_probs = F.log_softmax(logits, dim=-1)
    """,
    ),
    ok(
        "epsilon-guarded-log",
        """
        import torch
        import torch.nn.functional as F

        log_probs = torch.log(F.softmax(logits, dim=-1) + 1e-8)
    """,
    ),
    ok(
        "clamped-probabilities",
        """
        import torch

        probs = logits.softmax(-1)
        log_probs = probs.clamp(min=1e-6).log()
    """,
    ),
    ok(
        "entropy-of-named-probabilities",
        """
        import torch
        import torch.nn.functional as F

        probs = F.softmax(logits, dim=-1)
        action = torch.multinomial(probs, 1)
        entropy = -(probs * torch.log(probs)).sum(-1)
    """,
    ),
    ok(
        "log-of-sigmoid",
        """
        import torch

        log_p = torch.log(torch.sigmoid(logits))
    """,
    ),
    ok(
        "log-of-softmax-module-output",
        """
        import torch

        softmax = torch.nn.Softmax(dim=1)
        log_p = torch.log(probs_from_elsewhere)
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_case(source: str) -> None:
    check(source, CODE)


def test_fix_keeps_the_alias_and_the_arguments() -> None:
    (finding,) = lint(
        """
        import torch
        import torch.nn.functional as nnf
        lp = torch.log(nnf.softmax(x, -1, dtype=torch.float32))
        """,
        CODE,
    )
    assert finding.fix is not None and finding.fix.applicability.value == "safe"
    assert [edit.replacement for edit in finding.fix.edits] == ["nnf.log_softmax(x, -1, dtype=torch.float32)"]


def test_imported_softmax_name_has_no_fix() -> None:
    (finding,) = lint(
        """
        import torch
        from torch.nn.functional import softmax
        lp = torch.log(softmax(x, -1))
        """,
        CODE,
    )
    assert finding.fix is None


# Other ops on a softmax, and a log that writes into a buffer (fusing it would drop `out=`).
def test_other_ops_on_a_softmax_are_quiet() -> None:
    check(
        """
        import torch
        import torch.nn.functional as F

        probs = F.softmax(logits, dim=-1).detach()
        prediction = torch.argmax(torch.softmax(logits, dim=-1))
        torch.log(torch.softmax(scores, -1), out=log_probs)
        """,
        CODE,
    )
