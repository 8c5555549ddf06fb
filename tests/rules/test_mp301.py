"""MP301 adam-eps-underflow: an Adam-family optimizer over float16 parameters with an eps float16 rounds away.

Reported at the optimizer's construction. Torch facts the expectations rest on: torch.optim's
single-tensor and foreach Adam keep `exp_avg_sq.sqrt() + eps` in the parameters' dtype, so the
default eps=1e-8 is 0 in float16 (smallest subnormal 5.96e-8); `fused=True` computes in fp32;
bfloat16 holds 1e-8.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP301"

CASES = [
    bug(
        "half-model-default-eps",
        """
        import torch
        import torch.nn as nn

        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10)).cuda().half()
        criterion = nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: MP301
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images.cuda().half().view(-1, 784)), labels.cuda())
            loss.backward()
            optimizer.step()
    """,
    ),
    bug(
        "from-import-adamw-explicit-tiny-eps",
        """
        import torch
        from torch.optim import AdamW
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained("roberta-base", torch_dtype=torch.float16)
        optimizer = AdamW(model.parameters(), lr=2e-5, eps=1e-8, weight_decay=0.01)  # expect: MP301
    """,
    ),
    bug(
        "in-place-half-param-groups",
        """
        import torch
        from model import GPT

        model = GPT(config)
        model.half()
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(  # expect: MP301
            [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
            lr=6e-4,
            betas=(0.9, 0.95),
        )
    """,
    ),
    bug(
        "positional-eps-default-dtype",
        """
        import torch
        from torch import optim

        torch.set_default_dtype(torch.float16)
        net = torch.nn.Conv2d(3, 16, 3)
        opt = optim.NAdam(net.parameters(), 2e-3, (0.9, 0.999), 1e-10)  # expect: MP301
    """,
    ),
    bug(
        "optimizer-built-in-helper",
        """
        import torch

        def configure_optimizer(module, lr):
            return torch.optim.RAdam(module.parameters(), lr=lr)  # expect: MP301

        encoder = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(512, 8), 6).to(torch.float16)
        optimizer = configure_optimizer(encoder, 1e-4)
    """,
    ),
    bug(
        "fp16-or-bf16-flag",
        """
        import torch

        dtype = torch.float16 if args.fp16 else torch.bfloat16
        model = torch.nn.Linear(1024, 1024).to(device=device, dtype=dtype)
        optimizer = torch.optim.Adamax(model.parameters())  # expect: MP301
    """,
    ),
    bug(
        "transformers-adamw-smaller-eps",
        """
        import torch
        from transformers import AdamW, AutoModel

        model = AutoModel.from_pretrained("bert-base-uncased").half()
        optimizer = AdamW(model.parameters(), lr=3e-5, eps=1e-9)  # expect: MP301
    """,
    ),
    ok(
        "optimizer-arguments-from-an-unseen-helper",
        """
        import torch
        from trainer_utils import optimizer_kwargs

        model = torch.nn.Linear(256, 256).cuda().half()
        optimizer = torch.optim.AdamW(**optimizer_kwargs(model, weight_decay=0.01))
    """,
    ),
    ok(
        "eps-raised-for-fp16",
        """
        import torch

        model = torch.nn.Linear(256, 256).cuda().half()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    """,
    ),
    ok(
        "bf16-params-default-eps",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    """,
    ),
    ok(
        "fp32-params-under-autocast",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda")
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    """,
    ),
    ok(
        "fused-adam-computes-in-fp32",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    """,
    ),
    ok(
        "apex-fused-adam",
        """
        import torch
        from apex.optimizers import FusedAdam

        model = torch.nn.Linear(512, 512).cuda().half()
        optimizer = FusedAdam(model.parameters(), lr=1e-3)
    """,
    ),
    ok(
        "eps-from-config",
        """
        import torch

        model = torch.nn.Linear(512, 512).half()
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=args.adam_eps)
    """,
    ),
    ok(
        "transformers-adamw-default-eps",
        """
        import torch
        from transformers import AdamW

        model = torch.nn.Linear(512, 512).half()
        optimizer = AdamW(model.parameters(), lr=3e-5)
    """,
    ),
    ok(
        "sgd-on-half-params",
        """
        import torch

        model = torch.nn.Linear(512, 512).half()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """,
    ),
    # Every argument spread from a config: which parameters the optimizer gets is unknown.
    ok(
        "arguments-spread-from-config",
        """
        import torch

        model = torch.nn.Linear(512, 512).cuda().half()
        optim_kwargs = {"params": model.parameters(), "lr": 1e-3, "eps": 1e-4}
        optimizer = torch.optim.AdamW(**optim_kwargs)
    """,
    ),
    # hallo's stage-1 trainer: fp16 UNets under an accelerate launch config that runs DeepSpeed, whose
    # optimizer wrapper steps fp32 copies of the weights (eps is added in fp32).
    ok(
        "deepspeed-steps-fp32-masters",
        """
        import deepspeed
        import torch

        net = torch.nn.Linear(512, 512).cuda().to(dtype=torch.float16)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-5, eps=1e-8)
        engine, optimizer, _, _ = deepspeed.initialize(
            model=net, optimizer=optimizer, config={"train_batch_size": 8, "fp16": {"enabled": True}}
        )
    """,
    ),
    ok(
        "params-of-unknown-module",
        """
        import torch

        def make_optimizer(model):
            return torch.optim.Adam(model.parameters(), lr=1e-3)
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_case(source: str) -> None:
    check(source, CODE)


def test_message_says_what_eps_becomes() -> None:
    (finding,) = lint(
        """
        import torch
        model = torch.nn.Linear(8, 8).half()
        optimizer = torch.optim.Adam(model.parameters())
        """,
        CODE,
    )
    assert "eps=1e-08, which is 0 in float16" in finding.message
    assert "Adam over float16 parameters" in finding.message
