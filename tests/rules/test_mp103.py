"""MP103 scaler-update-per-optimizer: a second `scaler.update()` in one training iteration.
Reported at the second update."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

CODE = "MP103"

CASES = [
    bug(
        "gan-update-after-each-optimizer",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        scaler = GradScaler()
        for real, _ in loader:
            with autocast():
                d_loss = criterion(netD(real), ones) + criterion(netD(netG(noise).detach()), zeros)
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            scaler.update()
            with autocast():
                g_loss = criterion(netD(netG(noise)), ones)
            scaler.scale(g_loss).backward()
            scaler.step(opt_g)
            scaler.update()  # expect: MP103
        """,
    ),
    bug(
        "update-inside-optimizer-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(batch)
            scaler.scale(loss).backward()
            for optimizer in (encoder_opt, head_opt):
                scaler.step(optimizer)
                scaler.update()  # expect: MP103
        """,
    ),
    bug(
        "actor-critic-methods",
        """
        import torch

        class Agent:
            def __init__(self):
                self.scaler = torch.amp.GradScaler("cuda")

            def learn(self, rollouts):
                for obs, actions, returns in rollouts:
                    with torch.autocast("cuda"):
                        actor_loss, critic_loss = self.losses(obs, actions, returns)
                    self.scaler.scale(actor_loss).backward()
                    self.scaler.step(self.actor_opt)
                    self.scaler.update()
                    self.scaler.scale(critic_loss).backward()
                    self.scaler.step(self.critic_opt)
                    self.scaler.update()  # expect: MP103
        """,
    ),
    bug(
        "helper-updates-and-caller-updates",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def step(optimizer):
            scaler.step(optimizer)
            scaler.update()

        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            step(optimizer)
            scaler.update()  # expect: MP103
        """,
    ),
    bug(
        "straight-line-step-function",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def train_step(batch):
            with torch.autocast("cuda"):
                loss_a, loss_b = model(batch)
            scaler.scale(loss_a).backward()
            scaler.step(opt_a)
            scaler.update()
            scaler.scale(loss_b).backward()
            scaler.step(opt_b)
            scaler.update()  # expect: MP103
        """,
    ),
    bug(
        "conditional-second-update",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(batch)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if step % 100 == 0:
                scaler.update()  # expect: MP103
        """,
    ),
    ok(
        "gan-one-update",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for real, _ in loader:
            with torch.autocast("cuda"):
                d_loss = d_criterion(real)
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            with torch.autocast("cuda"):
                g_loss = g_criterion(real)
            scaler.scale(g_loss).backward()
            scaler.step(opt_g)
            scaler.update()
        """,
    ),
    ok(
        "two-scalers-each-once",
        """
        import torch

        scaler_d = torch.amp.GradScaler("cuda")
        scaler_g = torch.amp.GradScaler("cuda")
        for real in loader:
            with torch.autocast("cuda"):
                d_loss = d_criterion(real)
            scaler_d.scale(d_loss).backward()
            scaler_d.step(opt_d)
            scaler_d.update()
            with torch.autocast("cuda"):
                g_loss = g_criterion(real)
            scaler_g.scale(g_loss).backward()
            scaler_g.step(opt_g)
            scaler_g.update()
        """,
    ),
    ok(
        "once-per-iteration",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for epoch in range(epochs):
            for x, y in loader:
                with torch.autocast("cuda"):
                    loss = model(x, y)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
        """,
    ),
    ok(
        "amp-or-fp32-branches",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        for x, y in loader:
            with torch.autocast("cuda", enabled=amp):
                loss = model(x, y)
            if amp:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
        """,
    ),
    ok(
        "accumulation-one-update",
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
        """,
    ),
    ok(
        "update-in-helper-only",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def step_all(optimizers):
            for optimizer in optimizers:
                scaler.step(optimizer)
            scaler.update()

        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            step_all(optimizers)
        """,
    ),
    # The loss is scaled and backpropagated by a helper of another package (no backward the walk
    # sees): an update per iteration of the loop is still one per iteration.
    ok(
        "backward-by-a-helper-of-another-package",
        """
        import torch
        from apex_utils import amp_backward


        def train(model, loader, optimizer, criterion):
            scaler = torch.amp.GradScaler("cuda")
            for images, targets in loader:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = criterion(model(images), targets)
                amp_backward(loss, scaler)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp103(source: str) -> None:
    check(source, CODE)
