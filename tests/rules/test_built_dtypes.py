"""Modules built half from the start: `nn.Linear(..., dtype=cfg["dtype"])` with the dtype in a config
dict (rasbt/reasoning-from-scratch's Qwen3, whose `QWEN_CONFIG_06_B["dtype"]` is bfloat16), held by a
model class of the project, and reaching the optimizer through `model.parameters()`, also when one of
two branches builds the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, ok

QWEN3 = """
    import torch
    import torch.nn as nn

    QWEN_CONFIG = {"vocab_size": 151_936, "emb_dim": 1024, "n_layers": 28, "dtype": torch.bfloat16}

    class RMSNorm(nn.Module):
        def __init__(self, emb_dim, eps=1e-6):
            super().__init__()
            self.eps = eps
            self.scale = nn.Parameter(torch.ones(emb_dim))

    class Qwen3Model(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"], dtype=cfg["dtype"])
            self.final_norm = RMSNorm(cfg["emb_dim"])
            self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False, dtype=cfg["dtype"])

        def forward(self, in_idx):
            x = self.final_norm(self.tok_emb(in_idx))
            return self.out_head(x.to(torch.bfloat16))
"""

BUILT = [
    bug(
        "optimizer-over-a-model-built-in-the-configs-dtype",
        QWEN3
        + """
    def train(model, steps, lr=1e-5):
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr)  # expect: MP003
        model.train()
        for step in range(steps):
            loss = model(batch).float().mean()
            loss.backward()
            optimizer.step()

    train(Qwen3Model(QWEN_CONFIG), steps=100)
    """,
    ),
    bug(
        "either-branch-builds-the-same-half-model",
        QWEN3
        + """
    def load(checkpoint_path=None):
        if checkpoint_path:
            model = Qwen3Model(QWEN_CONFIG)
            model.load_state_dict(torch.load(checkpoint_path))
        else:
            model = Qwen3Model(QWEN_CONFIG)
        return model.to("cuda")

    model = load(args.checkpoint)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # expect: MP003
    """,
    ),
    bug(
        "a-single-linear-built-in-bf16",
        """
    import torch

    head = torch.nn.Linear(1024, 32_000, dtype=torch.bfloat16)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)  # expect: MP003
    """,
    ),
    ok(
        "the-same-model-built-in-fp32",
        QWEN3.replace('"dtype": torch.bfloat16', '"dtype": torch.float32')
        + """
    optimizer = torch.optim.AdamW(Qwen3Model(QWEN_CONFIG).parameters(), lr=1e-5)
    """,
    ),
    ok(
        "cast-back-to-fp32-before-the-optimizer",
        QWEN3
        + """
    model = Qwen3Model(QWEN_CONFIG).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    ok(
        "a-dtype-from-a-config-of-unknown-content",
        """
    import torch

    def build(cfg):
        head = torch.nn.Linear(1024, 32_000, dtype=cfg["dtype"])
        return torch.optim.SGD(head.parameters(), lr=0.1)
    """,
    ),
]


@pytest.mark.parametrize("source", BUILT)
def test_modules_built_half_reach_the_optimizer(source: str) -> None:
    check(source, "MP003")


def test_logits_of_a_head_built_half_across_files(tmp_path: Path) -> None:
    check_files(
        {
            "reasoning/qwen3.py": QWEN3,
            "reasoning/__init__.py": "",
            "ch06/grpo.py": """
                import torch
                from reasoning.qwen3 import QWEN_CONFIG, Qwen3Model

                def sequence_logprob(model, token_ids, prompt_len):
                    logits = model(token_ids.unsqueeze(0)).squeeze(0)
                    logprobs = torch.log_softmax(logits, dim=-1)  # expect: MP001
                    return logprobs[prompt_len - 1 : -1].sum()

                model = Qwen3Model(QWEN_CONFIG)
                print(sequence_logprob(model, torch.tensor([1, 2, 3]), 1))
            """,
        },
        "MP001",
        tmp_path,
    )
