"""How values flow through the calls and ops of an embedding model's training step (BGE-M3's, under
the Trainer's DeepSpeed fp16 engine): element-wise ops and `F.normalize`, lists of tensors
concatenated. Each case is training code as it is written, checked through MP001."""

from __future__ import annotations

import pytest

from tests.rules.casekit import bug, check, ok

ELEMENTWISE_AND_LISTS = [
    # Dropout and activations keep their input's dtype (on no autocast list).
    bug(
        "activations-and-dropout",
        """
        import torch
        import torch.nn.functional as F

        head = torch.nn.Linear(16, 16).half()

        def scores(x):
            h = F.dropout(F.gelu(head(x)), 0.1)
            return F.log_softmax(torch.nn.functional.silu(h), dim=-1)  # expect: MP001
        """,
    ),
    # `F.normalize` keeps an fp16 embedding fp16 outside autocast...
    bug(
        "normalized-embeddings",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def scores(q, p):
            q, p = F.normalize(encoder(q), dim=-1), F.normalize(encoder(p), dim=-1)
            return F.log_softmax(q @ p.T / 0.02, dim=-1)  # expect: MP001
        """,
    ),
    # ... but divides by `norm` (on CUDA autocast's fp32 list) inside a CUDA region: fp32 out.
    ok(
        "normalized-under-cuda-autocast",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def scores(q):
            with torch.autocast("cuda", dtype=torch.float16):
                q = F.normalize(encoder(q), dim=-1)
            return F.log_softmax(q, dim=-1)
        """,
    ),
    # A list appended to in a loop (which may not run) and concatenated: the tensors it holds.
    bug(
        "tensors-appended-then-concatenated",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def encode(batches):
            outs = []
            for batch in batches:
                outs.append(encoder(batch))
            return F.log_softmax(torch.cat(outs, 0), dim=-1)  # expect: MP001
        """,
    ),
    # A list of tensors of several dtypes concatenates to no dtype the analysis can tell.
    ok(
        "tensors-of-two-dtypes-concatenated",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(16, 16).half()

        def encode(x):
            return F.log_softmax(torch.cat([encoder(x), encoder(x).float()], 0), dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", ELEMENTWISE_AND_LISTS)
def test_elementwise_ops_and_lists(source: str) -> None:
    check(source, "MP001")
