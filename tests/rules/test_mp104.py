"""MP104 optimizer-step-bypasses-scaler: `optimizer.step()` on gradients of a scaled backward.
Reported at the `optimizer.step()` call, when every path to it last ran a scaled backward."""

from __future__ import annotations

import pytest

from .casekit import bug, check, line_of, lint, ok

CODE = "MP104"

CASES = [
    bug(
        "scaler-never-steps",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        model = Net().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        scaler = GradScaler()
        for data, target in train_loader:
            optimizer.zero_grad()
            with autocast():
                loss = F.nll_loss(model(data), target)
            scaler.scale(loss).backward()
            optimizer.step()  # expect: MP104
            scaler.update()
        """,
    ),
    bug(
        "stepped-twice",
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            optimizer.step()  # expect: MP104
            scaler.update()
            optimizer.zero_grad()
        """,
    ),
    bug(
        "second-optimizer-bypasses",
        """
        import torch

        backbone_opt = torch.optim.SGD(backbone.parameters(), lr=0.1)
        head_opt = torch.optim.Adam(head.parameters(), lr=1e-3)
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = criterion(head(backbone(x)), y)
            scaler.scale(loss).backward()
            scaler.step(backbone_opt)
            head_opt.step()  # expect: MP104
            scaler.update()
        """,
    ),
    bug(
        "accumulation-boundary",
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        scaler = torch.amp.GradScaler("cuda")
        for step, (x, y) in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(x, y) / accum_steps
            scaler.scale(loss).backward()
            if (step + 1) % accum_steps == 0:
                optimizer.step()  # expect: MP104
                scaler.update()
                optimizer.zero_grad()
        """,
    ),
    bug(
        "trainer-attributes",
        """
        import torch

        class Trainer:
            def __init__(self, model):
                self.model = model
                self.optimizer = torch.optim.AdamW(model.parameters())
                self.scaler = torch.cuda.amp.GradScaler()

            def train_step(self, batch):
                with torch.cuda.amp.autocast():
                    loss = self.model(batch)
                self.scaler.scale(loss).backward()
                self.optimizer.step()  # expect: MP104
                self.scaler.update()
        """,
    ),
    bug(
        "optimizer-parameter-known-by-zero-grad",
        """
        import torch

        def train(model, loader, optimizer, scaler):
            for x, y in loader:
                optimizer.zero_grad()
                with torch.autocast("cuda"):
                    loss = model(x, y)
                scaler.scale(loss).backward()
                optimizer.step()  # expect: MP104
                scaler.update()
        """,
    ),
    ok(
        "scaler-steps",
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ),
    ok(
        "fp32-fallback-branch",
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        scaler = torch.amp.GradScaler("cuda") if args.amp else None
        for x, y in loader:
            with torch.autocast("cuda", enabled=args.amp):
                loss = model(x, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
        """,
    ),
    ok(
        "gan-generator-unscaled",
        """
        import torch

        opt_d = torch.optim.Adam(netD.parameters())
        opt_g = torch.optim.Adam(netG.parameters())
        scaler = torch.amp.GradScaler("cuda")
        for real in loader:
            with torch.autocast("cuda"):
                d_loss = d_criterion(real)
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            scaler.update()
            g_loss = g_criterion(real)
            g_loss.backward()
            opt_g.step()
        """,
    ),
    ok(
        "backward-branches-differ",
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda", enabled=use_amp):
                loss = model(x, y)
            if use_amp:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            if amp_enabled:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        """,
    ),
    ok(
        "lr-scheduler-step",
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=100)
        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
        """,
    ),
    # The loss scaled by an expression around `scaler.scale(...)`: a division for gradient
    # accumulation, a weight on the left; the loss itself comes from a helper, of no known dtype.
    bug(
        "scaled-loss-divided-or-weighted",
        """
        import torch


        def train(model, loader, optimizer, criterion, accum_steps):
            scaler = torch.cuda.amp.GradScaler()
            for step, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                (scaler.scale(loss) / accum_steps).backward()
                if (step + 1) % accum_steps == 0:
                    optimizer.step()  # expect: MP104
                    scaler.update()
                    optimizer.zero_grad()


        def train_aux(model, loader, optimizer, criterion, aux_weight):
            scaler = torch.cuda.amp.GradScaler()
            for x, y in loader:
                aux = criterion(model(x), y)
                (aux_weight * scaler.scale(aux)).backward()
                optimizer.step()  # expect: MP104
                scaler.update()
        """,
    ),
    # The loss is scaled on one path only, and the optimizer steps by itself on the other: after
    # the branches the loss is no longer known to be scaled (whichever branch scales it).
    ok(
        "loss-scaled-on-the-amp-path-only",
        """
        import torch
        import torch.nn.functional as F


        def train(model, loader, optimizer, use_amp):
            scaler = torch.cuda.amp.GradScaler(enabled=use_amp)
            for x, y in loader:
                with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                    loss = F.cross_entropy(model(x), y)
                if use_amp:
                    loss = scaler.scale(loss)
                loss.backward()
                if use_amp:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad()
        """,
    ),
    ok(
        "loss-scaled-on-the-else-path-only",
        """
        import torch
        import torch.nn.functional as F


        def train(model, loader, optimizer, full_precision):
            scaler = torch.cuda.amp.GradScaler(enabled=not full_precision)
            for x, y in loader:
                with torch.autocast("cuda", dtype=torch.float16, enabled=not full_precision):
                    loss = F.cross_entropy(model(x), y)
                if full_precision:
                    to_backprop = loss
                else:
                    to_backprop = scaler.scale(loss)
                to_backprop.backward()
                if full_precision:
                    optimizer.step()
                else:
                    scaler.step(optimizer)
                    scaler.update()
                optimizer.zero_grad()
        """,
    ),
    ok(
        "accelerate-backward",
        """
        import torch
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="fp16")
        optimizer = torch.optim.AdamW(model.parameters())
        model, optimizer = accelerator.prepare(model, optimizer)
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        """,
    ),
    # nanoGPT's loop with `optimizer.step()` for `scaler.step(optimizer)`: the micro-step loop that
    # runs the scaled backward is a training loop's, it runs (no path skips it to the step).
    bug(
        "step-after-micro-step-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=(dtype == "float16"))
        optimizer = model.configure_optimizers(weight_decay, learning_rate, (beta1, beta2), device_type)
        X, Y = get_batch("train")
        while True:
            for micro_step in range(gradient_accumulation_steps):
                with ctx:
                    logits, loss = model(X, Y)
                    loss = loss / gradient_accumulation_steps
                X, Y = get_batch("train")
                scaler.scale(loss).backward()
            optimizer.step()  # expect: MP104
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            iter_num += 1
            if iter_num > max_iters:
                break
        """,
    ),
    ok(
        "scaler-steps-after-micro-step-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=(dtype == "float16"))
        for epoch in range(epochs):
            for batch in loader:
                for micro_batch in batch.split(micro_batch_size):
                    with torch.autocast("cuda", dtype=torch.float16):
                        loss = model(micro_batch).loss / accumulation_steps
                    scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """,
    ),
    # Epochs until a step budget, under a flag; the leftover of a partial accumulation is stepped
    # after the loop, bypassing the scaler.
    bug(
        "leftover-step-after-a-flag-controlled-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        step = 0
        running = True
        while running:
            for batch in loader:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(**batch).loss / accumulation_steps
                scaler.scale(loss).backward()
                step += 1
                if step % accumulation_steps == 0:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
                if step >= max_steps:
                    running = False
                    break
        optimizer.step()  # expect: MP104
        """,
    ),
    # A recursive helper that moves a nested batch to the device, called before the step: the
    # walk follows it to its end (it holds no scaler call) and still sees the bypassing step.
    bug(
        "recursive-batch-helper-before-the-step",
        """
        import torch


        def to_device(batch, device):
            if isinstance(batch, dict):
                return {key: to_device(value, device) for key, value in batch.items()}
            if isinstance(batch, (list, tuple)):
                return type(batch)(to_device(value, device) for value in batch)
            return batch.to(device, non_blocking=True)


        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            batch = to_device(batch, "cuda")
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            optimizer.step()  # expect: MP104
            scaler.update()
            optimizer.zero_grad()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp104(source: str) -> None:
    check(source, CODE)


# `else` forgotten: with `--amp` the scaler steps and then the optimizer steps again; without it,
# the optimizer applies the scaled gradients. On some path the step is not a second one, so the
# message says the gradients are scaled, whichever way the branch is written.
FORGOTTEN_ELSE = """
    import torch

    scaler = torch.amp.GradScaler("cuda")
    for batch in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        if args.amp:
            scaler.step(optimizer)
            scaler.update()
        optimizer.step()
        optimizer.zero_grad()
"""

FORGOTTEN_ELSE_NEGATED = """
    import torch

    scaler = torch.amp.GradScaler("cuda")
    for batch in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(**batch).loss
        scaler.scale(loss).backward()
        if not args.amp:
            pass
        else:
            scaler.step(optimizer)
            scaler.update()
        optimizer.step()
        optimizer.zero_grad()
"""


@pytest.mark.parametrize("source", [FORGOTTEN_ELSE, FORGOTTEN_ELSE_NEGATED], ids=["if", "if-not-else"])
def test_message_of_a_step_that_is_not_always_a_second_one(source: str) -> None:
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "optimizer.step()")
    assert "applies gradients still multiplied by the loss scale" in finding.message
    assert "steps again" not in finding.message


def test_message_of_a_second_step() -> None:
    source = """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.autocast("cuda"):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            optimizer.step()
            scaler.update()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "optimizer.step()")
    assert "steps again after `scaler.step(optimizer)` already did" in finding.message


# Both optimizers come from one factory whose result depends on the config (AdamW or SGD): the
# scaler stepping the backbone's does not make the head's bare step a second one.
def test_message_tells_apart_optimizers_built_by_one_factory() -> None:
    source = """
        import torch


        def build_optimizer(cfg, params, lr):
            if cfg.optimizer == "adamw":
                return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
            return torch.optim.SGD(params, lr=lr, momentum=0.9)


        backbone_opt = build_optimizer(cfg, backbone.parameters(), cfg.lr * 0.1)
        head_opt = build_optimizer(cfg, head.parameters(), cfg.lr)
        scaler = torch.amp.GradScaler("cuda")
        for images, labels in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(head(backbone(images)), labels)
            scaler.scale(loss).backward()
            scaler.step(backbone_opt)
            head_opt.step()
            scaler.update()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "head_opt.step()")
    assert "applies gradients still multiplied by the loss scale" in finding.message


# Optimizers handed in as a dict (their kind unknown here) are told apart by the item read.
def test_message_tells_apart_optimizers_of_a_dict() -> None:
    source = """
        import torch


        class GANTrainer:
            def __init__(self, generator, discriminator, optimizers):
                self.generator = generator
                self.discriminator = discriminator
                self.optimizers = optimizers
                self.scaler = torch.amp.GradScaler("cuda")

            def train_step(self, real, noise):
                self.optimizers["discriminator"].zero_grad()
                self.optimizers["generator"].zero_grad()
                with torch.autocast("cuda", dtype=torch.float16):
                    fake = self.generator(noise)
                    loss = self.adversarial_loss(self.discriminator(real), self.discriminator(fake))
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizers["discriminator"])
                self.optimizers["generator"].step()
                self.scaler.update()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, 'self.optimizers["generator"].step()')
    assert "applies gradients still multiplied by the loss scale" in finding.message


def test_message_names_the_optimizer_and_the_first_backward() -> None:
    source = """
        import torch


        class Trainer:
            def __init__(self, model, optimizer):
                self.model = model
                self.optimizer = optimizer
                self.scaler = torch.cuda.amp.GradScaler()

            def train_step(self, batch):
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = self.model(**batch).loss
                if self.distill:
                    loss = loss + self.kd_weight * self.kd_loss(batch)
                    self.scaler.scale(loss).backward()
                else:
                    self.scaler.scale(loss).backward()
                self.optimizer.step()
                self.scaler.update()
                self.optimizer.zero_grad()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "self.optimizer.step()")
    assert finding.message.startswith("`self.optimizer.step()` after a scaled backward")
    assert f"(line {line_of(source, 'kd_loss(batch)') + 1})" in finding.message
    assert finding.message.endswith("use `scaler.step(self.optimizer)`")


# A step before any backward (to build the optimizer's state before loading a checkpoint into
# it) steps nothing: no gradients, scaled or not.
def test_a_step_before_any_backward_is_quiet() -> None:
    check(
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        optimizer.zero_grad()
        optimizer.step()
        optimizer.load_state_dict(checkpoint["optimizer"])
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
        """,
        CODE,
    )
