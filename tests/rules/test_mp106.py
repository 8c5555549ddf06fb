"""MP106 scaler-with-bf16: an always-on GradScaler where the file's mixed precision is bf16 only.
Reported at the scaler construction."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

CODE = "MP106"

CASES = [
    bug(
        "bf16-autocast-with-scaler",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")  # expect: MP106
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "deprecated-api-bf16",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        scaler = GradScaler()  # expect: MP106
        for batch in loader:
            with autocast(dtype=torch.bfloat16):
                loss = model(batch)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "enabled-true-literal",
        """
        import torch

        amp_dtype = torch.bfloat16
        scaler = torch.amp.GradScaler("cuda", enabled=True)  # expect: MP106
        with torch.autocast(device_type="cuda", dtype=amp_dtype):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        """,
    ),
    bug(
        "bf16-params-no-autocast",
        """
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained("gpt2", torch_dtype=torch.bfloat16)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        scaler = torch.amp.GradScaler("cuda")  # expect: MP106
        for batch in loader:
            loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "two-bf16-regions",
        """
        import torch

        scaler = torch.amp.GradScaler()  # expect: MP106

        def train_step(batch):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(batch)
            scaler.scale(loss).backward()

        @torch.no_grad()
        def evaluate(batch):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(batch)
        """,
    ),
    bug(
        "sharded-scaler-bf16",
        """
        import torch
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        scaler = ShardedGradScaler()  # expect: MP106
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fsdp_model(batch).sum()
        scaler.scale(loss).backward()
        """,
    ),
    # The loss is computed in float32 in a disabled region: that region's dtype (float16, CUDA's
    # default) is never used, so the file's mixed precision is still bfloat16 only.
    bug(
        "bf16-with-fp32-loss-region",
        """
        import torch
        import torch.nn.functional as F
        from torch.cuda.amp import GradScaler

        scaler = GradScaler()  # expect: MP106

        def train_step(model, batch, optimizer):
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(batch["input_ids"])
            with torch.autocast("cuda", enabled=False):
                loss = F.cross_entropy(logits.float().flatten(0, 1), batch["labels"].flatten())
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    # A helper builds the scaler: reported once, where `GradScaler` is called, not at each call of
    # the helper.
    bug(
        "scaler-built-by-helper",
        """
        import torch

        def make_scaler(device):
            return torch.amp.GradScaler(device)  # expect: MP106

        class Trainer:
            def __init__(self, model, optimizer):
                self.model, self.optimizer = model, optimizer
                self.scaler = make_scaler("cuda")

            def step(self, batch):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = self.model(batch).loss
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
        """,
    ),
    ok(
        "nanogpt-enabled-depends-on-dtype",
        """
        import torch
        from contextlib import nullcontext

        dtype = 'bfloat16' if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else 'float16'
        ptdtype = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}[dtype]
        ctx = nullcontext() if device_type == 'cpu' else torch.amp.autocast(device_type=device_type, dtype=ptdtype)
        scaler = torch.cuda.amp.GradScaler(enabled=(dtype == 'float16'))
        with ctx:
            logits, loss = model(X, Y)
        scaler.scale(loss).backward()
        """,
    ),
    ok(
        "fp16-autocast",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        """,
    ),
    ok(
        "enabled-from-args",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=args.fp16)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        """,
    ),
    ok(
        "dtype-chosen-at-runtime",
        """
        import torch

        amp_dtype = torch.bfloat16 if args.bf16 else torch.float16
        scaler = torch.amp.GradScaler("cuda")
        with torch.autocast("cuda", dtype=amp_dtype):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        """,
    ),
    ok(
        "bf16-and-fp16-regions",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).mean()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            aux = teacher(x).mean()
        scaler.scale(loss + aux).backward()
        """,
    ),
    # No autocast region in the file and a float32 model: nothing says the run is bfloat16 (the
    # regions may live in the module that runs the steps).
    ok(
        "fp32-optimizer-no-region",
        """
        import torch
        from torch.cuda.amp import GradScaler

        def build(cfg):
            model = torch.nn.Transformer(d_model=cfg.d_model).cuda()
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1)
            scaler = GradScaler()
            return model, optimizer, scaler
        """,
    ),
    ok(
        "disabled-scaler",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=False)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).mean()
        scaler.scale(loss).backward()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp106(source: str) -> None:
    check(source, CODE)
