"""MP108 scheduler-step-after-skipped-step: a learning-rate scheduler stepped after
`scaler.step(optimizer)` in the same iteration, whether or not the scaler skipped the step.

Reported at the scheduler's step. Torch facts (torch 2.13, checked in
tests/runtime/test_catalog_claims_mp108_mp207_mp306.py): GradScaler calls `optimizer.step()` only
when no inf/NaN was found; a scheduler stepped anyway advances (and warns "Detected call of
`lr_scheduler.step()` before `optimizer.step()`"); checking that the scale did not drop keeps the
schedule with the weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, lint, ok

CODE = "MP108"

SETUP = """
        import torch
        import torch.nn.functional as F

        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda")
"""

CASES = [
    bug(
        "one-cycle-after-update",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for images, labels in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = F.cross_entropy(model(images.cuda()), labels.cuda())
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()  # expect: MP108
        """,
    ),
    bug(
        "between-step-and-update-as-raft-does",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-4, 100_000, pct_start=0.05)
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scheduler.step()  # expect: MP108
            scaler.update()
        """,
    ),
    bug(
        "transformers-warmup-with-gradient-accumulation",
        SETUP
        + """
        from transformers import get_linear_schedule_with_warmup

        lr_scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=500, num_training_steps=20_000)
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean() / 4
            scaler.scale(loss).backward()
            if (step + 1) % 4 == 0:
                scaler.step(optimizer)
                scaler.update()
                lr_scheduler.step()  # expect: MP108
                optimizer.zero_grad()
        """,
    ),
    bug(
        "training-step-in-a-helper",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=10_000)

        def train_step(batch):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
            return loss

        for batch in loader:
            train_step(batch)
            scheduler.step()  # expect: MP108
        """,
    ),
    bug(
        "old-cuda-amp-api-imported-by-name",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast
        from torch.optim.lr_scheduler import CosineAnnealingLR

        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        scheduler = CosineAnnealingLR(optimizer, T_max=len(loader) * 90)
        scaler = GradScaler()
        for epoch in range(90):
            for images, labels in loader:
                with autocast():
                    loss = torch.nn.functional.cross_entropy(model(images), labels)
                optimizer.zero_grad()
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()  # expect: MP108
        """,
    ),
    bug(
        "a-condition-that-does-not-read-the-skip",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 1000))
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if scheduler is not None:
                scheduler.step()  # expect: MP108
        """,
    ),
    bug(
        "diffusers-scheduler-stepped-inside-a-trainer-method",
        """
        import torch
        from diffusers.optimization import get_scheduler

        class Trainer:
            def __init__(self, unet):
                self.unet = unet.cuda()
                self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=1e-4)
                self.lr_scheduler = get_scheduler("cosine", optimizer=self.optimizer, num_warmup_steps=500)
                self.scaler = torch.amp.GradScaler("cuda", enabled=True)

            def train(self, loader):
                for batch in loader:
                    with torch.autocast("cuda", dtype=torch.float16):
                        loss = self.unet(batch).mean()
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.lr_scheduler.step()  # expect: MP108
                    self.optimizer.zero_grad()

        Trainer(build_unet()).train(loader)
        """,
    ),
    bug(
        "one-finding-per-scheduler-step-for-two-optimizers",
        SETUP
        + """
        head_optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1000)
        head_scheduler = torch.optim.lr_scheduler.StepLR(head_optimizer, step_size=1000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.step(head_optimizer)
            scaler.update()
            scheduler.step()  # expect: MP108
            head_scheduler.step()  # expect: MP108
        """,
    ),
    bug(
        "stepped-first-thing-in-the-next-iteration",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=2000)
        for step, batch in enumerate(loader):
            if step > 0:
                scheduler.step()  # expect: MP108
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    ok(
        "the-scale-is-checked",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scale_before = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            if scale_before <= scaler.get_scale():
                scheduler.step()
        """,
    ),
    ok(
        "the-skip-is-held-in-a-flag",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            skip_lr_sched = scale > scaler.get_scale()
            if not skip_lr_sched:
                scheduler.step()
        """,
    ),
    # The skip check guards an inner condition (warmup only): the scheduler is still inside it.
    ok(
        "the-skip-check-around-a-warmup-condition",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=500)
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            if scale <= scaler.get_scale():
                if step < 500:
                    scheduler.step()
        """,
    ),
    # The learning rate read for logging after the step is no step of the scheduler.
    ok(
        "the-learning-rate-logged-after-the-step",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            if scale <= scaler.get_scale():
                scheduler.step()
            print(f"loss {loss.item():.4f} lr {scheduler.get_last_lr()[0]:.2e}")
        """,
    ),
    ok(
        "optimizer-was-run-in-a-trainer-attribute",
        """
        import torch

        class Trainer:
            def __init__(self, model):
                self.model = model.cuda()
                self.optimizer = torch.optim.AdamW(self.model.parameters())
                self.lr_scheduler = torch.optim.lr_scheduler.LinearLR(self.optimizer)
                self.scaler = torch.amp.GradScaler("cuda")

            def train(self, loader):
                for batch in loader:
                    with torch.autocast("cuda", dtype=torch.float16):
                        loss = self.model(batch).mean()
                    self.scaler.scale(loss).backward()
                    scale_before = self.scaler.get_scale()
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
                    self.optimizer_was_run = scale_before <= self.scaler.get_scale()
                    if self.optimizer_was_run:
                        self.lr_scheduler.step()

        Trainer(build()).train(loader)
        """,
    ),
    ok(
        "stepped-once-per-epoch",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 60], gamma=0.1)
        for epoch in range(90):
            for images, labels in loader:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = F.cross_entropy(model(images), labels)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            scheduler.step()
        """,
    ),
    ok(
        "scaler-disabled",
        """
        import torch

        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        for batch in loader:
            loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ),
    ok(
        "scaler-behind-an-option-that-is-off-by-default",
        """
        import argparse
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--fp16", action="store_true")
        args = parser.parse_args()
        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        scaler = torch.cuda.amp.GradScaler(enabled=args.fp16)
        for batch in loader:
            with torch.autocast("cuda", enabled=args.fp16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ),
    ok(
        "bf16-loss-has-no-overflow-to-skip",
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ),
    # bf16 in the configuration that runs; the other dtype comes from a config this analysis does
    # not read: nothing says it is fp16.
    ok(
        "bf16-by-default-else-a-dtype-from-the-config",
        SETUP
        + """
        import argparse

        parser = argparse.ArgumentParser()
        parser.add_argument("--bf16", default=True)
        args = parser.parse_args()
        amp_dtype = torch.bfloat16 if args.bf16 else config.amp_dtype
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=amp_dtype):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ),
    ok(
        "reduce-on-plateau-follows-a-metric",
        SETUP
        + """
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=100)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            plateau.step(loss.item())
        """,
    ),
    ok(
        "scheduler-of-an-optimizer-the-scaler-does-not-step",
        SETUP
        + """
        probe = torch.nn.Linear(10, 2).cuda()
        probe_optimizer = torch.optim.SGD(probe.parameters(), lr=0.1)
        probe_scheduler = torch.optim.lr_scheduler.StepLR(probe_optimizer, step_size=1000)
        for batch, targets in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                features = model(batch)
                loss = features.mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            F.cross_entropy(probe(features.detach().float()), targets).backward()
            probe_optimizer.step()
            probe_scheduler.step()
        """,
    ),
    ok(
        "no-loss-scaler",
        """
        import torch

        model = torch.nn.Linear(512, 10).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(batch).mean()
            loss.backward()
            optimizer.step()
            scheduler.step()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp108(source: str) -> None:
    check(source, CODE)


def test_training_step_in_another_file(tmp_path: Path) -> None:
    check_files(
        {
            "engine.py": """
                import torch

                def train_one_step(model, batch, optimizer, scaler):
                    with torch.autocast("cuda", dtype=torch.float16):
                        loss = model(batch).mean()
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
            """,
            "train.py": """
                import torch
                from engine import train_one_step

                model = torch.nn.Linear(64, 64).cuda()
                optimizer = torch.optim.AdamW(model.parameters())
                scheduler = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=500)
                scaler = torch.amp.GradScaler("cuda")
                for batch in loader:
                    train_one_step(model, batch, optimizer, scaler)
                    scheduler.step()  # expect: MP108
            """,
        },
        CODE,
        tmp_path,
    )


def test_the_message_names_the_scaler_step_and_the_fix() -> None:
    (finding,) = lint(
        SETUP
        + """
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10_000)
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(batch).mean()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
        CODE,
    )
    assert "after `scaler.step(...)` (line 14)" in finding.message
    assert "if scale_before <= scaler.get_scale(): scheduler.step()" in finding.message
