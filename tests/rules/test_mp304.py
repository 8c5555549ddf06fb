"""MP304 norm-eps-underflow: a normalization eps below float16's smallest subnormal added to a float16 tensor.

Reported at the addition. Torch facts (torch 2.13): `fp16_zero + 1e-12` is 0; a hand-written
BertLayerNorm made `.half()` returns NaN on a constant row; nn.LayerNorm / GroupNorm / RMSNorm
add eps in fp32 for half inputs, so they stay quiet.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP304"

BERT_LAYER_NORM = """
import torch
import torch.nn as nn

class BertLayerNorm(nn.Module):
    def __init__(self, hidden_size, eps=1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x):
        u = x.mean(-1, keepdim=True)
        s = (x - u).pow(2).mean(-1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.variance_epsilon)  # MARK
        return self.weight * x + self.bias

class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size, hidden_size):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size)
        self.LayerNorm = BertLayerNorm(hidden_size, eps=EPS)

    def forward(self, input_ids):
        return self.LayerNorm(self.word_embeddings(input_ids))
"""


def _bert(eps: str, mark: str, tail: str) -> str:
    return BERT_LAYER_NORM.replace("EPS", eps).replace("# MARK", mark) + tail


CASES = [
    bug(
        "bert-layer-norm-half-model",
        _bert("1e-12", "# expect: MP304", "\nmodel = BertEmbeddings(30522, 768).cuda().half()\nout = model(input_ids)\n"),
    ),
    bug(
        "bert-layer-norm-to-float16",
        _bert("1e-12", "# expect: MP304", "\nmodel = BertEmbeddings(30522, 768).to(device, dtype=torch.float16)\nout = model(input_ids)\n"),
    ),
    bug(
        "bert-layer-norm-default-dtype",
        _bert("1e-10", "# expect: MP304", "\ntorch.set_default_dtype(torch.float16)\nmodel = BertEmbeddings(30522, 768)\nout = model(input_ids)\n"),
    ),
    bug(
        "rms-norm-under-fp16-autocast",
        """
        import torch

        proj = torch.nn.Linear(512, 512).cuda()
        with torch.autocast("cuda", dtype=torch.float16):
            h = proj(x)
            h = h * torch.rsqrt(h.square().mean(-1, keepdim=True) + 1e-12)  # expect: MP304
    """,
    ),
    bug(
        "normalize-embeddings-by-hand",
        """
        import torch

        encoder = torch.nn.Linear(768, 256).half()
        emb = encoder(features)
        emb = emb / torch.sqrt(emb.pow(2).sum(dim=-1, keepdim=True) + 1e-12)  # expect: MP304
    """,
    ),
    bug(
        "variance-of-half-tensor",
        """
        import torch

        feats = torch.randn(8, 64, dtype=torch.float16, device="cuda")
        var = feats.var(dim=0, keepdim=True)
        whitened = (feats - feats.mean(0)) / torch.sqrt(var + 1e-9)  # expect: MP304
    """,
    ),
    ok(
        "bert-layer-norm-fp32-model",
        _bert("1e-12", "", "\nmodel = BertEmbeddings(30522, 768).cuda()\nout = model(input_ids)\n"),
    ),
    ok(
        "bert-layer-norm-bf16-model",
        _bert("1e-12", "", "\nmodel = BertEmbeddings(30522, 768).to(torch.bfloat16)\nout = model(input_ids)\n"),
    ),
    ok(
        "bert-layer-norm-fp16-safe-eps",
        _bert("1e-5", "", "\nmodel = BertEmbeddings(30522, 768).half()\nout = model(input_ids)\n"),
    ),
    ok(
        "native-layer-norm-adds-eps-in-fp32",
        """
        import torch.nn as nn

        class Block(nn.Module):
            def __init__(self, d):
                super().__init__()
                self.ln = nn.LayerNorm(d, eps=1e-12)
                self.fc = nn.Linear(d, d)

            def forward(self, x):
                return self.fc(self.ln(x))

        model = Block(768).half()
        y = model(x)
    """,
    ),
    ok(
        "llama-rms-norm-upcasts",
        """
        import torch

        proj = torch.nn.Linear(512, 512).half()
        h = proj(x)
        h32 = h.float()
        h = (h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + 1e-12)).to(h.dtype)
    """,
    ),
    ok(
        "eps-from-config",
        """
        import torch

        proj = torch.nn.Linear(512, 512).half()
        h = proj(x)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + config.rms_norm_eps)
    """,
    ),
    ok(
        "unknown-input-precision",
        """
        import torch

        def rms_norm(x, eps=1e-12):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_case(source: str) -> None:
    check(source, CODE)


# F.normalize / F.cosine_similarity: their default eps (1e-12 / 1e-8) is 0 in float16.
NORMALIZE_CASES = [
    bug(
        "normalize-half-embeddings",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(768, 256).cuda().half()
        emb = F.normalize(encoder(features), dim=-1)  # expect: MP304
        """,
    ),
    bug(
        "cosine-similarity-default-eps",
        """
        import torch
        from torch.nn import functional as F

        q = queries.to(torch.float16)
        scores = F.cosine_similarity(q, keys, dim=-1)  # expect: MP304
        """,
    ),
    bug(
        "torch-cosine-similarity-full-name",
        """
        import torch

        a = torch.randn(4, 128, dtype=torch.float16)
        sim = torch.cosine_similarity(a, b)  # expect: MP304
        """,
    ),
    bug(
        "normalize-in-a-method",
        """
        import torch
        import torch.nn as nn
        import torch.nn.functional as F

        class Projector(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(512, 128)

            def forward(self, x):
                return F.normalize(self.fc(x), p=2, dim=1)  # expect: MP304

        model = Projector().half()
        z = model(images)
        """,
    ),
    bug(
        "normalize-in-a-helper",
        """
        import torch
        import torch.nn.functional as F

        def l2norm(x):
            return torch.nn.functional.normalize(x, dim=-1)  # expect: MP304

        text = torch.randn(8, 64, dtype=torch.float16)
        text = l2norm(text)
        """,
    ),
    bug(
        "explicit-tiny-eps",
        """
        import torch
        import torch.nn.functional as F

        x = torch.randn(8, 64).half()
        y = F.normalize(x, dim=-1, eps=1e-10)  # expect: MP304
        """,
    ),
    bug(
        "dtype-from-config-dict",
        """
        import torch
        import torch.nn.functional as F

        cfg = {"dtype": torch.float16}
        x = torch.randn(8, 64, dtype=cfg["dtype"])
        y = F.normalize(x, 2, -1)  # expect: MP304
        """,
    ),
    bug(
        "conditional-half-dtype",
        """
        import torch
        import torch.nn.functional as F

        dtype = torch.float16 if args.fp16 else torch.bfloat16
        x = torch.randn(8, 64, dtype=dtype)
        y = F.normalize(x, dim=-1)  # expect: MP304
        """,
    ),
    ok(
        "normalize-fp32",
        """
        import torch.nn.functional as F
        import torch

        x = torch.randn(8, 64)
        y = F.normalize(x, dim=-1)
        """,
    ),
    ok(
        "normalize-bf16",
        """
        import torch
        import torch.nn.functional as F

        x = torch.randn(8, 64, dtype=torch.bfloat16)
        y = F.normalize(x, dim=-1)
        """,
    ),
    ok(
        "normalize-after-float",
        """
        import torch
        import torch.nn.functional as F

        x = torch.randn(8, 64, dtype=torch.float16)
        y = F.normalize(x.float(), dim=-1).to(x.dtype)
        """,
    ),
    ok(
        "eps-float16-holds",
        """
        import torch
        import torch.nn.functional as F

        x = torch.randn(8, 64, dtype=torch.float16)
        y = F.normalize(x, dim=-1, eps=1e-6)
        s = F.cosine_similarity(x, x, dim=-1, eps=1e-4)
        """,
    ),
    ok(
        "under-fp16-autocast",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(768, 256).cuda()
        with torch.autocast("cuda", dtype=torch.float16):
            emb = F.normalize(encoder(features), dim=-1)
            sim = F.cosine_similarity(emb, other)
        """,
    ),
    ok(
        "unknown-dtype",
        """
        import torch.nn.functional as F

        def embed(model, batch):
            return F.normalize(model(batch), dim=-1)
        """,
    ),
    ok(
        "not-torch-normalize",
        """
        import torch
        from sklearn.preprocessing import normalize

        x = torch.randn(8, 64, dtype=torch.float16)
        y = normalize(x.numpy())
        """,
    ),
    bug(
        "normalize-in-a-region-that-turns-autocast-off",
        """
        import torch
        import torch.nn.functional as F

        encoder = torch.nn.Linear(768, 256).cuda().half()
        with torch.autocast("cuda", enabled=False):
            emb = F.normalize(encoder(features), dim=-1)  # expect: MP304
        """,
    ),
    bug(
        "cosine-similarity-by-keyword-half-second-input",
        """
        import torch
        import torch.nn.functional as F

        image_encoder = torch.nn.Linear(1024, 512).cuda().half()
        scores = F.cosine_similarity(x1=text_emb, x2=image_encoder(pixels), dim=-1)  # expect: MP304
        """,
    ),
    ok(
        "cosine-similarity-with-an-fp32-input-computes-in-fp32",
        """
        import torch
        import torch.nn.functional as F

        student = torch.nn.Linear(768, 256).cuda().half()
        teacher_emb = torch.randn(32, 256, device="cuda")
        loss = 1 - F.cosine_similarity(student(features), teacher_emb, dim=-1).mean()
        """,
    ),
    ok(
        "a-project-cosine-similarity",
        """
        import torch
        from retrieval.ops import cosine_similarity

        encoder = torch.nn.Linear(768, 256).cuda().half()
        scores = cosine_similarity(encoder(queries), encoder(passages))
        """,
    ),
    ok(
        "half-model-normalize-fp32-input",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(8, 8).half()
        target = F.normalize(torch.randn(4, 8), dim=-1)
        """,
    ),
]


@pytest.mark.parametrize("source", NORMALIZE_CASES)
def test_normalize_case(source: str) -> None:
    check(source, CODE)



def _normalize_message(call: str) -> str:
    (finding,) = lint(
        f"""
        import torch
        import torch.nn.functional as F

        emb = torch.randn(8, 64, dtype=torch.float16)
        y = {call}
        """,
        CODE,
    )
    return finding.message


def test_the_message_says_when_the_eps_is_the_default() -> None:
    assert "normalize's eps=1e-12 (the default) clamps" in _normalize_message("F.normalize(emb)")
    assert "normalize's eps=1e-10 clamps" in _normalize_message("F.normalize(emb, eps=1e-10)")
