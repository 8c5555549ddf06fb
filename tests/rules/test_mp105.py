"""MP105 unscale-every-microbatch: an unconditional `scaler.unscale_` reached again before
`scaler.update()`. Reported at the `unscale_` call."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

CODE = "MP105"

CASES = [
    bug(
        "unscale-before-accumulation-check",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(train_dataloader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss / args.gradient_accumulation_steps
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # expect: MP105
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            if (step + 1) % args.gradient_accumulation_steps == 0:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """,
    ),
    bug(
        "inner-micro-batch-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            for micro in batch.split(micro_batch_size):
                with torch.autocast("cuda"):
                    loss = model(micro) / n_micro
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # expect: MP105
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "global-step-counter",
        """
        import torch
        from torch.cuda.amp import GradScaler

        scaler = GradScaler()
        global_step = 0
        for epoch in range(num_epochs):
            for x, y in loader:
                with torch.cuda.amp.autocast():
                    loss = criterion(model(x), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)  # expect: MP105
                global_step += 1
                if global_step % accum_iter == 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    scaler.step(optimizer)
                    scaler.update()
        """,
    ),
    bug(
        "trainer-method",
        """
        import torch

        class Trainer:
            def __init__(self, model, optimizer, accum):
                self.model, self.optimizer, self.accum = model, optimizer, accum
                self.scaler = torch.amp.GradScaler("cuda")

            def fit(self, loader):
                for i, batch in enumerate(loader):
                    with torch.autocast("cuda"):
                        loss = self.model(batch)
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.optimizer)  # expect: MP105
                    if (i + 1) % self.accum == 0:
                        self.scaler.step(self.optimizer)
                        self.scaler.update()
        """,
    ),
    bug(
        "update-only-when-stepping-helper",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def maybe_step(step):
            if step % accum == 0:
                scaler.step(optimizer)
                scaler.update()

        for step, batch in enumerate(loader, start=1):
            with torch.autocast("cuda"):
                loss = model(batch)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # expect: MP105
            maybe_step(step)
        """,
    ),
    bug(
        "while-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        it = 0
        while it < max_iters:
            with torch.autocast("cuda"):
                loss = model(next(batches))
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # expect: MP105
            it += 1
            if it % grad_accum == 0:
                scaler.step(optimizer)
                scaler.update()
        """,
    ),
    ok(
        "unscale-inside-condition",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(batch) / accum
            scaler.scale(loss).backward()
            if (step + 1) % accum == 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
        """,
    ),
    ok(
        "no-accumulation",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    ok(
        "unscale-after-micro-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            for micro in batch.split(micro_batch_size):
                with torch.autocast("cuda"):
                    loss = model(micro) / n_micro
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    ok(
        "same-condition-split-in-two-ifs",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(batch) / accum
            scaler.scale(loss).backward()
            if (step + 1) % accum == 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if (step + 1) % accum == 0:
                scaler.step(optimizer)
                scaler.update()
        """,
    ),
    ok(
        "two-optimizers-unscaled-once-each",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.unscale_(opt_a)
            scaler.unscale_(opt_b)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt_a)
            scaler.step(opt_b)
            scaler.update()
        """,
    ),
    ok(
        "clip-flag-guard",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            if args.clip_grad:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp105(source: str) -> None:
    check(source, CODE)


# The scaler is never updated (MP102 says so): no update to wait for, nothing for MP105.
def test_unscale_without_any_update_is_left_to_mp102() -> None:
    check(
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            optimizer.zero_grad()
        """,
        CODE,
    )


# Two scalers (an EMA teacher's auxiliary loss has its own): the auxiliary scaler's update on every
# iteration does not update the main scaler, which is unscaled on every micro-batch.
def test_an_update_of_another_scaler_does_not_count() -> None:
    check(
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        aux_scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda"):
                loss, aux_loss = model(**batch)
            scaler.scale(loss / accum).backward()
            scaler.unscale_(optimizer)  # expect: MP105
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            aux_scaler.scale(aux_loss).backward()
            aux_scaler.step(aux_optimizer)
            aux_scaler.update()
            if (step + 1) % accum == 0:
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """,
        CODE,
    )


# The boundary test is written twice, once as a flag: an unscale under an `if` inside the loop is
# taken to run only where the step does (which `if` is which the walk cannot tell).
def test_unscale_under_a_condition_of_its_own_is_quiet() -> None:
    check(
        """
        import contextlib

        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            sync = (step + 1) % accum == 0 or step + 1 == len(loader)
            with contextlib.nullcontext() if sync else model.no_sync():
                with torch.autocast("cuda"):
                    loss = model(**batch).loss / accum
                scaler.scale(loss).backward()
            if sync:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if (step + 1) % accum == 0 or step + 1 == len(loader):
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        """,
        CODE,
    )
