"""MP302 mask-fill-overflow: a mask constant beyond float16's range written into a float16 tensor.

Reported at the masking call or arithmetic. Torch facts the expectations rest on (torch 2.13):
`masked_fill` converts its value with an overflow check ("value cannot be converted to type
c10::Half without overflow"); `half_tensor * -1e9` and `torch.where(m, half_tensor, -1e9)` give
-inf; float16's max is 65504, bfloat16's range is fp32's.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP302"

CASES = [
    bug(
        "half-model-attention-masked-fill",
        """
        import math
        import torch
        import torch.nn as nn

        class SelfAttention(nn.Module):
            def __init__(self, d_model):
                super().__init__()
                self.qkv = nn.Linear(d_model, 3 * d_model)
                self.d_model = d_model

            def forward(self, x, mask):
                q, k, v = self.qkv(x).chunk(3, dim=-1)
                scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model)
                scores = scores.masked_fill(mask == 0, -1e9)  # expect: MP302
                return scores.softmax(dim=-1) @ v

        model = SelfAttention(512).cuda().half()
        out = model(tokens, padding_mask)
    """,
    ),
    bug(
        "fp16-autocast-in-place-fill",
        """
        import torch

        proj = torch.nn.Linear(64, 64).cuda()
        with torch.autocast("cuda", dtype=torch.float16):
            attn = torch.matmul(proj(h), proj(h).transpose(-1, -2))
            attn.masked_fill_(~causal_mask, -1e10)  # expect: MP302
            probs = attn.softmax(-1)
    """,
    ),
    bug(
        "torch-masked-fill-function-positive-constant",
        """
        import torch

        scorer = torch.nn.Bilinear(32, 32, 1).half()
        energy = scorer(a, b).squeeze(-1)
        energy = torch.masked_fill(energy, visited, 1e5)  # expect: MP302
        next_city = energy.argmin(-1)
    """,
    ),
    bug(
        "additive-mask-on-half-mask",
        """
        import torch
        from transformers import AutoModel

        encoder = AutoModel.from_pretrained("bert-base-uncased", torch_dtype=torch.float16)
        hidden = encoder(input_ids).last_hidden_state
        mask = attention_mask.to(torch.float16)
        extended = (1.0 - mask) * -1e9  # expect: MP302
    """,
    ),
    bug(
        "where-with-scalar",
        """
        import torch as th

        net = th.nn.Linear(128, 128).to(th.float16)
        logits = net(x)
        logits = th.where(valid, logits, -1e9)  # expect: MP302
    """,
    ),
    bug(
        "fp16-or-bf16-config",
        """
        import torch

        amp_dtype = torch.float16 if cfg.fp16 else torch.bfloat16
        head = torch.nn.Linear(256, 256).cuda()
        with torch.autocast("cuda", dtype=amp_dtype):
            sim = head(q) @ head(k).T
        sim = sim.masked_fill(~pair_mask, -1e9)  # expect: MP302
    """,
    ),
    bug(
        "scale-from-head-dim-folded",
        """
        import torch

        class Attn(torch.nn.Module):
            def __init__(self, dim, dim_head=64):
                super().__init__()
                self.scale = dim_head ** -0.5
                self.to_qk = torch.nn.Linear(dim, dim * 2)

            def forward(self, x, mask):
                q, k = self.to_qk(x).chunk(2, dim=-1)
                dots = (q @ k.transpose(-1, -2)) * self.scale
                return dots.masked_fill(mask, -1e10).softmax(-1)  # expect: MP302

        attn = Attn(256).half()
        y = attn(x, mask)
    """,
    ),
    bug(
        "where-in-a-helper-is-reported-there-once",
        """
        import torch

        def masked_softmax(mask, scores, fill):
            return torch.where(mask, scores, fill).softmax(-1)  # expect: MP302

        net = torch.nn.Linear(8, 8).half()
        probs = masked_softmax(pad, net(x), -1e9)
    """,
    ),
    bug(
        "indices-of-a-mask-and-a-starred-fill",
        """
        import torch

        net = torch.nn.Linear(8, 8).half()
        scores = net(x)
        rows, cols = torch.where(pad)
        filled = scores.masked_fill(pad, *fill_args)
        filled = torch.masked_fill(*scores_and_mask, -1e9)
        filled = torch.masked_fill(*scores_and_mask, value=-1e9)
        scores = scores.masked_fill(pad, -1e9)  # expect: MP302
    """,
    ),
    ok(
        "finfo-min",
        """
        import torch

        model = torch.nn.Linear(64, 64).half()
        scores = model(x) @ model(x).transpose(-2, -1)
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
    """,
    ),
    ok(
        "fp32-model",
        """
        import torch

        model = torch.nn.Linear(64, 64).cuda()
        scores = model(x) @ model(x).transpose(-2, -1)
        scores = scores.masked_fill(mask == 0, -1e9)
    """,
    ),
    ok(
        "bf16-autocast-holds-1e9",
        """
        import torch

        model = torch.nn.Linear(64, 64).cuda()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            scores = model(x) @ model(x).transpose(-2, -1)
            scores = scores.masked_fill(mask == 0, -1e9)
    """,
    ),
    ok(
        "minus-inf-is-representable",
        """
        import torch

        model = torch.nn.Linear(64, 64).half()
        scores = model(x) @ model(x).transpose(-2, -1)
        scores = scores.masked_fill(mask == 0, float("-inf"))
    """,
    ),
    ok(
        "bert-minus-ten-thousand",
        """
        import torch

        model = torch.nn.Linear(64, 64).half()
        mask = attention_mask.half()
        extended = (1.0 - mask) * -10000.0
    """,
    ),
    ok(
        "unknown-precision-helper",
        """
        import torch

        def mask_scores(scores, mask):
            return scores.masked_fill(mask == 0, -1e9)
    """,
    ),
    ok(
        "bool-mask-times-constant-promotes-to-fp32",
        """
        import torch

        model = torch.nn.Linear(64, 64).half()
        scores = model(x) @ model(x).transpose(-2, -1)
        penalty = (~keep) * -1e9
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_case(source: str) -> None:
    check(source, CODE)


def test_fix_reuses_the_torch_alias_and_the_receiver() -> None:
    (finding,) = lint(
        """
        import math
        import numpy as np
        import torch as th
        net = th.nn.Linear(8, 8).half()
        scores = net(x)
        scores = scores.masked_fill(pad, -1e9)
        """,
        CODE,
    )
    assert finding.fix is not None and finding.fix.applicability.value == "unsafe"
    assert [edit.replacement for edit in finding.fix.edits] == ["th.finfo(scores.dtype).min"]


def test_no_fix_when_the_receiver_is_not_a_plain_name() -> None:
    (finding,) = lint(
        """
        import torch
        net = torch.nn.Linear(8, 8).half()
        scores = net(x).masked_fill(pad, -1e9)
        """,
        CODE,
    )
    assert finding.fix is None
    assert "value cannot be converted" in finding.message


def test_fix_spells_torch_as_a_submodule_import_binds_it() -> None:
    (finding,) = lint(
        """
        import torch.utils.checkpoint
        from torch import nn
        net = nn.Linear(8, 8).half()
        scores = net(x)
        scores = torch.where(pad, scores, -1e9)
        """,
        CODE,
    )
    assert finding.line == 6
    assert finding.message.startswith("where with -1e+09 on a float16 tensor")
    assert finding.fix is not None
    assert [edit.replacement for edit in finding.fix.edits] == ["torch.finfo(scores.dtype).min"]


def test_no_fix_without_a_torch_import() -> None:
    (finding,) = lint(
        """
        from torch import nn
        net = nn.Linear(8, 8).half()
        scores = net(x)
        scores = scores.masked_fill(pad, -1e9)
        """,
        CODE,
    )
    assert finding.line == 5
    assert finding.message.startswith("masked_fill with -1e+09 on a float16 tensor")
    assert finding.fix is None


def test_a_fill_value_from_a_kwargs_dict_is_reported_without_a_fix() -> None:
    (finding,) = lint(
        """
        import torch
        net = torch.nn.Linear(8, 8).half()
        scores = net(x)
        fill = {"value": -1e9}
        scores = scores.masked_fill(pad, **fill)
        """,
        CODE,
    )
    assert "-1e+09" in finding.message
    assert finding.fix is None


def test_a_fill_value_from_a_helper_not_linted_is_not_reported() -> None:
    assert not lint(
        """
        import torch
        from masking import fill_kwargs
        net = torch.nn.Linear(8, 8).half()
        scores = net(x)
        scores = scores.masked_fill(pad, **fill_kwargs(scores))
        """,
        CODE,
    )
