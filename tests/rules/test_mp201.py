"""MP201 backward-inside-autocast: the backward pass or the optimizer step runs inside an
autocast region. Reported at the `.backward()` / `.step()` call.

PyTorch's autocast docs: wrap only the forward pass and the loss; "Backward passes under autocast
are not recommended." A nested `autocast(enabled=False)` ends the region for what it wraps.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, lint, ok

CODE = "MP201"

CASES = [
    bug(
        "scaled-backward-and-step-in-with-block",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        scaler = GradScaler()
        for images, labels in train_loader:
            optimizer.zero_grad()
            with autocast():
                outputs = model(images.cuda(non_blocking=True))
                loss = criterion(outputs, labels.cuda(non_blocking=True))
                scaler.scale(loss).backward()  # expect: MP201
                scaler.step(optimizer)  # expect: MP201
                scaler.update()
    """,
    ),
    bug(
        "plain-backward-and-optimizer-step-bf16",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        for x, y in loader:
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                loss.backward()  # expect: MP201
                optimizer.step()  # expect: MP201
            optimizer.zero_grad(set_to_none=True)
    """,
    ),
    bug(
        "region-held-in-a-variable",
        """
        import torch
        from contextlib import nullcontext

        ctx = torch.amp.autocast(device_type="cuda", dtype=torch.bfloat16)
        for it in range(max_iters):
            X, Y = get_batch("train")
            with ctx:
                logits, loss = model(X, Y)
                loss = loss / gradient_accumulation_steps
                loss.backward()  # expect: MP201
    """,
    ),
    bug(
        "helper-called-inside-region",
        """
        import torch

        model = torch.nn.Linear(16, 4).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def backward_and_step(loss, optimizer):
            loss.backward()  # expect: MP201
            optimizer.step()  # expect: MP201
            optimizer.zero_grad()

        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).pow(2).mean()
                backward_and_step(loss, opt)
    """,
    ),
    bug(
        "conditional-enabled-flag",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=args.amp)
        for step, (src, tgt) in enumerate(loader):
            with torch.autocast("cuda", enabled=args.amp):
                loss = model(src, tgt)
                scaler.scale(loss).backward()  # expect: MP201
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    bug(
        "decorated-train-step",
        """
        import torch

        @torch.autocast("cuda", dtype=torch.bfloat16)
        def train_step(model, batch):
            loss = model(**batch).loss
            loss.backward()  # expect: MP201
            return loss.detach()
    """,
    ),
    bug(
        "autograd-backward-function",
        """
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = net(inputs)
            loss = loss_fn(out, targets)
            torch.autograd.backward(loss)  # expect: MP201
    """,
    ),
    bug(
        "gradient-accumulation-inside-region",
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler("cuda")
        for i, batch in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(batch) / accum_steps
                scaler.scale(loss).backward()  # expect: MP201
                if (i + 1) % accum_steps == 0:
                    scaler.step(optimizer)  # expect: MP201
                    scaler.update()
                    optimizer.zero_grad()
    """,
    ),
    ok(
        "pytorch-amp-recipe",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for input, target in data:
            optimizer.zero_grad()
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                output = model(input)
                loss = loss_fn(output, target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    """,
    ),
    ok(
        "nested-disabled-region-around-backward",
        """
        import torch

        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).float().mean()
            with torch.autocast("cuda", enabled=False):
                loss.backward()
                optimizer.step()
    """,
    ),
    ok(
        "accelerate-autocast-block",
        """
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="bf16")
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for batch in loader:
            with accelerator.autocast():
                loss = model(**batch).loss
                accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
    """,
    ),
    bug(
        "scaler-built-by-a-project-helper",
        """
        import torch

        scaler = build_grad_scaler(cfg)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).loss
                scaler.scale(loss).backward()  # expect: MP201
                scaler.step(optimizer)  # expect: MP201
            scaler.update()
    """,
    ),
    # A loss the analysis only knows came out of the region (an untracked model's output dict).
    bug(
        "loss-read-from-the-output-dict",
        """
        import torch

        class Trainer:
            def train_step(self, batch):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    outputs = self.model(batch["input_ids"], labels=batch["labels"])
                    loss = outputs["loss"]
                    loss.backward()  # expect: MP201
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
        """,
    ),
    # A loss computed elsewhere (another method), known only as scaled.
    bug(
        "scaled-loss-stored-by-another-method",
        """
        import torch

        class Trainer:
            def forward_pass(self, batch):
                self.loss = self.criterion(self.model(batch["x"]), batch["y"])

            def train_step(self, batch):
                with torch.autocast("cuda", dtype=torch.float16):
                    self.forward_pass(batch)
                    self.scaler.scale(self.loss).backward()  # expect: MP201
                self.scaler.step(self.optimizer)
                self.scaler.update()
        """,
    ),
    # The engine's backward runs the loss's backward where it is called: inside the region.
    bug(
        "deepspeed-engine-backward-inside-region",
        """
        import deepspeed
        import torch

        config = {"train_batch_size": 32, "bf16": {"enabled": True}}
        engine, optimizer, _, _ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = engine(batch["input_ids"]).loss
                engine.backward(loss)  # expect: MP201
            engine.step()
        """,
    ),
    # `accelerator.backward(loss)` with the accelerator handed in: an untracked receiver, whose
    # backward is the framework's to run.
    ok(
        "accelerator-handed-to-the-training-function",
        """
        import torch

        def train_one_epoch(accelerator, model, loader, optimizer):
            for batch in loader:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad()
        """,
    ),
    ok(
        "accelerator-backward-in-torch-region",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
            accelerator.backward(loss)
    """,
    ),
    ok(
        "zero-grad-inside-region",
        """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
    """,
    ),
    ok(
        "scheduler-step-inside-region",
        """
        import torch

        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).mean()
            scheduler.step()
        loss.backward()
    """,
    ),
    ok(
        "plateau-scheduler-step-on-the-validation-loss",
        """
        import torch

        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min")
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            val_loss = criterion(model(x_val), y_val)
            scheduler.step(val_loss)
    """,
    ),
    ok(
        "evaluation-only-region",
        """
        import torch

        model.eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
            for x, y in val_loader:
                correct += (model(x).argmax(-1) == y).sum().item()
    """,
    ),
    ok(
        "region-disabled-by-literal",
        """
        import torch

        with torch.autocast("cuda", enabled=False):
            loss = model(x).mean()
            loss.backward()
            optimizer.step()
    """,
    ),
    ok(
        "lightning-training-step-returns-loss",
        """
        import torch
        import lightning as L

        class LitModel(L.LightningModule):
            def training_step(self, batch, batch_idx):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    loss = self.model(batch).mean()
                return loss
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp201(source: str) -> None:
    check(source, CODE)


def test_message_names_the_step_and_the_region() -> None:
    (finding,) = lint(
        """
        import torch
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).mean()
            loss.backward()
    """,
        CODE,
    )
    assert "`.backward()`" in finding.message
    assert "cuda bfloat16 autocast opened at train.py:3" in finding.message
