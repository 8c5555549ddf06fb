"""MP101 clip-before-unscale: gradients clipped or read between a scaled backward and the step.

Reported at the clip (or `.grad` computation). Torch facts: `scaler.scale(loss).backward()` leaves
every `.grad` multiplied by the scale until `scaler.unscale_(optimizer)` (or `scaler.step`) divides it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .casekit import bug, check, check_files, line_of, lint, ok

CODE = "MP101"

CASES = [
    bug(
        "pytorch-forum-clip-after-scaled-backward",
        """
        import torch
        from torch.cuda.amp import GradScaler, autocast

        scaler = GradScaler()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
        for images, targets in loader:
            optimizer.zero_grad()
            with autocast():
                loss = criterion(model(images), targets)
            scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)  # expect: MP101
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "commented-out-unscale-accumulation",
        """
        import torch
        from torch.nn.utils import clip_grad_norm_

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(train_loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss / args.gradient_accumulation_steps
            scaler.scale(loss).backward()
            if (step + 1) % args.gradient_accumulation_steps == 0:
                # scaler.unscale_(optimizer)
                clip_grad_norm_(model.parameters(), args.max_grad_norm)  # expect: MP101
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
        """,
    ),
    bug(
        "clip-grad-value-nn-alias",
        """
        import torch
        import torch.nn as nn

        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            with torch.cuda.amp.autocast():
                loss = nn.functional.mse_loss(net(x), y)
            scaler.scale(loss).backward()
            nn.utils.clip_grad_value_(net.parameters(), clip_value=0.5)  # expect: MP101
            scaler.step(opt)
            scaler.update()
        """,
    ),
    bug(
        "grad-norm-logged-before-unscale",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for it, (x, y) in enumerate(loader):
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            total = 0.0
            for p in model.parameters():
                if p.grad is not None:
                    total += p.grad.data.norm(2).item() ** 2  # expect: MP101
            writer.add_scalar("grad_norm", total ** 0.5, it)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "scaler-passed-as-parameter-structural",
        """
        import torch

        def train_one_epoch(model, loader, optimizer, scaler, max_norm):
            for samples, targets in loader:
                with torch.autocast("cuda"):
                    loss = model(samples, targets)
                scaler.scale(loss).backward()
                if max_norm > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)  # expect: MP101
                scaler.step(optimizer)
                scaler.update()
        """,
    ),
    bug(
        "backward-in-helper-method",
        """
        import torch

        class Trainer:
            def __init__(self, model, optimizer):
                self.model = model
                self.optimizer = optimizer
                self.scaler = torch.amp.GradScaler("cuda")

            def backward(self, loss):
                self.scaler.scale(loss).backward()

            def fit(self, loader):
                for batch in loader:
                    with torch.autocast("cuda"):
                        loss = self.model(batch)
                    self.backward(loss)
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)  # expect: MP101
                    self.scaler.step(self.optimizer)
                    self.scaler.update()
        """,
    ),
    bug(
        "fsdp-clip-method",
        """
        import torch
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        model = FSDP(torch.nn.Linear(1024, 1024))
        scaler = ShardedGradScaler()
        for x in loader:
            with torch.autocast("cuda"):
                loss = model(x).sum()
            scaler.scale(loss).backward()
            model.clip_grad_norm_(1.0)  # expect: MP101
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    bug(
        "step-function-without-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def train_step(model, batch, optimizer):
            with torch.autocast("cuda"):
                loss = model(batch)
            scaler.scale(loss).backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: MP101
            scaler.step(optimizer)
            scaler.update()
            return loss, grad_norm
        """,
    ),
    ok(
        "unscale-first",
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
        "unscale-inside-accumulation-condition",
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
        "amp-and-fp32-paths-correlated",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=args.amp)
        for x, y in loader:
            with torch.autocast("cuda", enabled=args.amp):
                loss = model(x, y)
            if args.amp:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            if args.amp:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        """,
    ),
    ok(
        "unscaled-backward-fp32",
        """
        import torch

        for x, y in loader:
            loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        """,
    ),
    ok(
        "clip-after-step-in-next-block",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
        """,
    ),
    ok(
        "zeroing-grad-is-no-read",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            for p in frozen_params:
                p.grad = None
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    ok(
        "accelerate-clips-for-you",
        """
        from accelerate import Accelerator

        accelerator = Accelerator(mixed_precision="fp16")
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        for batch in loader:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        """,
    ),
    ok(
        "unscale-in-helper",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")

        def clip_gradients(optimizer, params, max_norm):
            scaler.unscale_(optimizer)
            return torch.nn.utils.clip_grad_norm_(params, max_norm)

        for x, y in loader:
            with torch.autocast("cuda"):
                loss = model(x, y)
            scaler.scale(loss).backward()
            clip_gradients(optimizer, model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    # One training step per precision, chosen by an if/elif/else chain: only the fp16 arm (the
    # `else`) scales the loss, and it clips before unscaling.
    bug(
        "clip-before-unscale-in-the-else-of-a-precision-chain",
        """
        import torch


        def train_step(model, batch, optimizer, scaler, precision):
            with torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16"):
                loss = model(**batch).loss
            if precision == "fp32":
                loss.backward()
                optimizer.step()
            elif precision == "bf16":
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: MP101
                scaler.step(optimizer)
                scaler.update()
            optimizer.zero_grad()
        """,
    ),
    # The same chain with the fp16 arm as the `elif`, unscaling first; the `else` is bf16.
    ok(
        "unscale-before-clip-in-the-elif-of-a-precision-chain",
        """
        import torch


        def train_step(model, batch, optimizer, scaler, precision):
            with torch.autocast("cuda", dtype=torch.float16, enabled=precision == "fp16"):
                loss = model(**batch).loss
            if precision == "fp32":
                loss.backward()
                optimizer.step()
            elif precision == "fp16":
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            optimizer.zero_grad()
        """,
    ),
    # Gradients accumulated over micro-batches, then clipped before they are unscaled.
    bug(
        "clip-after-micro-batch-loop",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            for micro_batch in batch.split(micro_batch_size):
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = model(micro_batch).mean() / accumulation_steps
                scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: MP101
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
        """,
    ),
    # Averaging gradients by hand across ranks reads and rescales scaled gradients, which is
    # linear: no magnitude is taken, nothing is clipped (nor is asking the model for its parameters).
    ok(
        "manual-gradient-all-reduce-before-unscale",
        """
        import torch
        import torch.distributed as dist
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.body = nn.Linear(512, 10)

            def forward(self, x):
                return self.body(x)


        model = Net().cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scaler = torch.amp.GradScaler("cuda")
        world_size = dist.get_world_size()
        for x, y in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = nn.functional.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            for p in model.parameters():
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(world_size)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    # Watching the logits' magnitude (fp16 overflows past 65504) reads the forward's output, not a
    # gradient: only magnitudes of `.grad` are computations on scaled gradients.
    ok(
        "logit-magnitude-logged-before-unscale",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                outputs = model(**batch)
            scaler.scale(outputs.loss).backward()
            writer.add_scalar("train/max_logit", outputs.logits.abs().max().item(), step)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
    # The norm taken by a function (`torch.norm(p.grad)`) reads the magnitude as much as the method.
    bug(
        "grad-norm-by-function-before-unscale",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, (x, y) in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            norms = [torch.norm(p.grad, 2) for p in model.parameters() if p.grad is not None]  # expect: MP101
            writer.add_scalar("grad_norm", torch.stack(norms).norm(), step)
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp101(source: str) -> None:
    check(source, CODE)


# fp32 warm-up steps backpropagate without the scaler and clip what they get: the last backward
# before that clip is a plain one, so its gradients are not scaled, whatever ran before.
WARMUP_THEN_AMP = """
    import torch
    import torch.nn.functional as F


    def train(model, loader, optimizer, scaler, warmup_steps):
        for step, (x, y) in enumerate(loader):
            if step < warmup_steps:
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            else:
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = F.cross_entropy(model(x), y)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
            optimizer.zero_grad()
"""


def test_clip_after_a_plain_backward_is_quiet() -> None:
    check(WARMUP_THEN_AMP, CODE)


def test_message_names_the_function_clipping() -> None:
    source = """
        import torch
        from torch.nn.utils import clip_grad_norm_

        scaler = torch.amp.GradScaler("cuda")
        for batch in loader:
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
            scaler.scale(loss).backward()
            clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "clip_grad_norm_(model")
    assert finding.message.startswith("`clip_grad_norm_` sees gradients")
    assert f"scaled backward at line {line_of(source, '.backward()')}" in finding.message
    wrapped = """
        import torch
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        model = FSDP(torch.nn.Linear(1024, 1024))
        scaler = ShardedGradScaler()
        for x in loader:
            with torch.autocast("cuda"):
                loss = model(x).sum()
            scaler.scale(loss).backward()
            model.clip_grad_norm_(1.0)
            scaler.step(optimizer)
            scaler.update()
    """
    [finding] = lint(wrapped, CODE)
    assert finding.line == line_of(wrapped, "model.clip_grad_norm_")
    assert finding.message.startswith("`clip_grad_norm_` sees gradients")


def test_message_of_a_computation_on_grad() -> None:
    source = """
        import torch

        scaler = torch.cuda.amp.GradScaler()
        for x, y in loader:
            with torch.cuda.amp.autocast():
                loss = criterion(model(x), y)
            scaler.scale(loss).backward()
            grad_norm = torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]).norm()
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "p.grad.norm()")
    assert finding.message.startswith("this computation on `.grad` sees gradients")


def test_message_names_the_first_scaled_backward_that_reaches_the_clip() -> None:
    source = """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        for step, batch in enumerate(loader):
            with torch.autocast("cuda", dtype=torch.float16):
                loss = model(**batch).loss
                kd_loss = distill_loss(model, teacher, batch) if args.distill else None
            if kd_loss is not None:
                scaler.scale(loss + args.kd_weight * kd_loss).backward()
            else:
                scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "clip_grad_norm_")
    assert f"scaled backward at line {line_of(source, 'kd_weight')}," in finding.message


def test_clip_in_a_helper_of_two_loops_is_one_finding_with_a_related_note() -> None:
    source = """
        import torch
        from torch.cuda.amp import autocast


        def clip_and_step(model, optimizer, scaler, max_norm=1.0):
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad()


        def train_epoch(model, loader, optimizer, scaler):
            for batch in loader:
                with autocast():
                    loss = model(**batch).loss
                scaler.scale(loss).backward()
                clip_and_step(model, optimizer, scaler)


        def finetune_head(model, loader, optimizer, scaler):
            for batch in loader:
                with autocast():
                    loss = model.head_loss(**batch)
                scaler.scale(loss).backward()
                clip_and_step(model, optimizer, scaler)
    """
    [finding] = lint(source, CODE)
    assert finding.line == line_of(source, "torch.nn.utils.clip_grad_norm_")
    lines = enumerate(source.splitlines(), start=1)
    first, second = [number for number, line in lines if ".backward()" in line]
    assert f"scaled backward at line {first}," in finding.message
    [related] = finding.related
    assert f"scaled backward at line {second}," in related


def test_each_file_of_a_unit_is_walked_for_its_own_paths(tmp_path: Path) -> None:
    """Two files of one unit (a script and the trainer module it runs) each clip too early: the
    traces of a file are its own, not the last file's the same analysis walked."""
    files = {
        "train.py": """
            import torch
            from torch.cuda.amp import GradScaler, autocast

            from trainer import finetune

            scaler = GradScaler()
            for images, targets in loader:
                with autocast():
                    loss = criterion(model(images), targets)
                scaler.scale(loss).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: MP101
                scaler.step(optimizer)
                scaler.update()
            finetune(model, loader, optimizer, scaler)
        """,
        "trainer.py": """
            import torch
            from torch.cuda.amp import autocast


            def finetune(model, loader, optimizer, scaler):
                for batch in loader:
                    with autocast():
                        loss = model(**batch).loss
                    scaler.scale(loss).backward()
                    torch.nn.utils.clip_grad_value_(model.parameters(), 0.5)  # expect: MP101
                    scaler.step(optimizer)
                    scaler.update()
        """,
    }
    check_files(files, CODE, tmp_path)
