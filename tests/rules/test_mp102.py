"""MP102 scaler-update-missing: `scaler.step` in a training loop whose iteration can end without
`scaler.update()`. Reported at `scaler.step(...)`. A path that returns to a caller is not judged."""

from __future__ import annotations

import pytest

from .casekit import bug, check, line_of, lint, ok

CODE = "MP102"

CASES = [
    bug(
        "update-forgotten",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        scaler = GradScaler()
        for epoch in range(epochs):
            for images, labels in train_loader:
                optimizer.zero_grad()
                with autocast():
                    loss = criterion(model(images), labels)
                scaler.scale(loss).backward()
                scaler.step(optimizer)  # expect: MP102
        """,
    ),
    bug(
        "update-only-when-logging",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, (x, y) in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # expect: MP102
            if step % args.log_interval == 0:
                scaler.update()
                print(f"step {step} loss {loss.item():.4f} scale {scaler.get_scale()}")
        """,
    ),
    bug(
        "continue-skips-update",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(batch)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # expect: MP102
            if not torch.isfinite(loss):
                continue
            scaler.update()
        """,
    ),
    bug(
        "update-outside-the-loop",
        """
        import torch

        def train_epoch(model, loader, optimizer, scaler):
            for x, y in loader:
                with torch.autocast("cuda"):
                    loss = model(x, y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)  # expect: MP102
                optimizer.zero_grad()
            scaler.update()
        """,
    ),
    bug(
        "self-scaler-in-trainer",
        """
        import torch

        class Trainer:
            def __init__(self, model, optimizer):
                self.model, self.optimizer = model, optimizer
                self.scaler = torch.amp.GradScaler("cuda")

            def train(self, loader):
                for it, batch in enumerate(loader):
                    with torch.autocast("cuda"):
                        loss = self.model(batch)
                    self.scaler.scale(loss).backward()
                    self.scaler.step(self.optimizer)  # expect: MP102
                    if it % 50 == 0:
                        self.scaler.update()
        """,
    ),
    bug(
        "while-loop-with-step-counter",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        step = 0
        while step < max_steps:
            x, y = next(data_iter)
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)  # expect: MP102
            step += 1
            if step % 10 == 0:
                scaler.update()
        """,
    ),
    ok(
        "update-every-iteration",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
        """,
    ),
    ok(
        "accumulation-step-and-update-together",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(batch) / accum
            scaler.scale(loss).backward()
            if (step + 1) % accum == 0:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """,
    ),
    ok(
        "several-optimizers-one-update",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(batch)
            scaler.scale(loss).backward()
            for optimizer in optimizers:
                scaler.step(optimizer)
            scaler.update()
        """,
    ),
    ok(
        "update-in-helper",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def optimizer_step(optimizer):
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)

        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            optimizer_step(optimizer)
        """,
    ),
    ok(
        "step-helper-returns-to-caller",
        """
        import torch

        class AmpStepper:
            def __init__(self):
                self.scaler = torch.amp.GradScaler("cuda")

            def step(self, optimizer):
                self.scaler.step(optimizer)

            def update(self):
                self.scaler.update()
        """,
    ),
    ok(
        "correlated-amp-condition",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        for x, y in loader:
            with torch.autocast("cuda", enabled=use_amp):
                loss = model(x, y)
            if use_amp:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
            else:
                loss.backward()
                optimizer.step()
            if use_amp:
                scaler.update()
        """,
    ),
    ok(
        "break-after-update",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, (x, y) in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if step >= max_steps:
                break
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp102(source: str) -> None:
    check(source, CODE)


# A GAN whose script lost its `scaler.update()`: each step ends its part of the iteration
# without one (the discriminator's step is followed by the generator's, not by an update).
GAN_WITHOUT_UPDATE = """
    import torch

    scaler = torch.cuda.amp.GradScaler()
    for real, _ in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss_d = discriminator_loss(netD, netG, real)
        scaler.scale(loss_d).backward()
        scaler.step(opt_d)  # expect: MP102
        with torch.autocast("cuda", dtype=torch.float16):
            loss_g = generator_loss(netD, netG, real)
        scaler.scale(loss_g).backward()
        scaler.step(opt_g)  # expect: MP102
        opt_d.zero_grad()
        opt_g.zero_grad()
"""

# One scaler per network: the discriminator's is updated at the end of the iteration, the
# generator's never is.
GAN_TWO_SCALERS_ONE_UPDATED = """
    import torch

    scaler_d = torch.cuda.amp.GradScaler()
    scaler_g = torch.cuda.amp.GradScaler()
    for real, _ in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss_d = discriminator_loss(netD, netG, real)
        scaler_d.scale(loss_d).backward()
        scaler_d.step(opt_d)
        with torch.autocast("cuda", dtype=torch.float16):
            loss_g = generator_loss(netD, netG, real)
        scaler_g.scale(loss_g).backward()
        scaler_g.step(opt_g)  # expect: MP102
        scaler_d.update()
"""

# The same with both scalers from one factory (sharded under FSDP): each is either class, so the
# two are told apart by the names that hold them.
GAN_FACTORY_SCALERS_ONE_UPDATED = """
    import torch
    from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler


    def make_scaler(cfg):
        return ShardedGradScaler() if cfg.fsdp else torch.amp.GradScaler("cuda")


    scaler_d = make_scaler(cfg)
    scaler_g = make_scaler(cfg)
    for real, _ in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss_d = discriminator_loss(netD, netG, real)
        scaler_d.scale(loss_d).backward()
        scaler_d.step(opt_d)
        with torch.autocast("cuda", dtype=torch.float16):
            loss_g = generator_loss(netD, netG, real)
        scaler_g.scale(loss_g).backward()
        scaler_g.step(opt_g)  # expect: MP102
        scaler_d.update()
"""


@pytest.mark.parametrize(
    "source",
    [GAN_WITHOUT_UPDATE, GAN_TWO_SCALERS_ONE_UPDATED, GAN_FACTORY_SCALERS_ONE_UPDATED],
    ids=["gan-no-update", "gan-two-scalers", "gan-factory-scalers"],
)
def test_an_update_counts_for_its_own_scaler_only(source: str) -> None:
    check(source, CODE)


def test_message_says_why_the_update_is_missed() -> None:
    findings = lint(GAN_WITHOUT_UPDATE, CODE)
    assert [finding.line for finding in findings] == [line_of(GAN_WITHOUT_UPDATE, "step(opt_d)"), line_of(GAN_WITHOUT_UPDATE, "step(opt_g)")]
    assert all("(the loop never calls it)" in finding.message for finding in findings)
    conditional = """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            if step % args.update_every == 0:
                scaler.update()
            optimizer.zero_grad()
    """
    [finding] = lint(conditional, CODE)
    assert finding.line == line_of(conditional, "scaler.step(optimizer)")
    assert "(it runs only under a condition)" in finding.message
