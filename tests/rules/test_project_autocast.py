"""A project's own context manager that opens an autocast region (`@contextmanager` helpers, as
nanoGPT-style `ctx` factories and `maybe_autocast()` wrappers are written): `with helper():` enters
the region active at the helper's `yield`."""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

HELPERS = [
    bug(
        "fp16-helper-around-the-forward",
        """
        from contextlib import contextmanager
        import torch

        @contextmanager
        def mixed_precision():
            with torch.autocast("cuda", dtype=torch.float16):  # expect: MP002
                yield

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with mixed_precision():
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    bug(
        "helper-enabled-by-its-default",
        """
        import contextlib
        import torch

        @contextlib.contextmanager
        def maybe_autocast(enabled=True):
            if enabled:
                with torch.cuda.amp.autocast():  # expect: MP002
                    yield
            else:
                yield

        def train(model, optimizer, loader):
            for x in loader:
                with maybe_autocast():
                    loss = model(x).sum()
                loss.backward()
                optimizer.step()

        model = torch.nn.Linear(8, 8).cuda()
        train(model, torch.optim.SGD(model.parameters(), lr=0.1), loader)
        """,
    ),
    ok(
        "helper-disabled-by-its-default",
        """
        import contextlib
        import torch

        @contextlib.contextmanager
        def maybe_autocast(enabled=False):
            if enabled:
                with torch.cuda.amp.autocast():
                    yield
            else:
                yield

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x in loader:
            with maybe_autocast():
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "bf16-helper",
        """
        from contextlib import contextmanager
        import torch

        @contextmanager
        def mixed_precision():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                yield

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with mixed_precision():
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "helper-that-only-times-the-step",
        """
        import time
        from contextlib import contextmanager
        import torch

        @contextmanager
        def timed(name):
            start = time.time()
            yield
            print(name, time.time() - start)

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        for x in loader:
            with timed("forward"):
                loss = model(x).sum()
            loss.backward()
            optimizer.step()
        """,
    ),
    ok(
        "fp16-helper-with-a-scaler",
        """
        from contextlib import contextmanager
        import torch

        @contextmanager
        def mixed_precision():
            with torch.autocast("cuda", dtype=torch.float16):
                yield

        model = torch.nn.Linear(8, 8).cuda()
        optimizer = torch.optim.AdamW(model.parameters())
        scaler = torch.amp.GradScaler("cuda")
        for x in loader:
            with mixed_precision():
                loss = model(x).sum()
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        """,
    ),
]


@pytest.mark.parametrize("source", HELPERS)
def test_a_projects_autocast_helper_opens_its_region(source: str) -> None:
    check(source, "MP002")


def test_logits_computed_under_a_cpu_bf16_helper() -> None:
    check(
        """
        from contextlib import contextmanager
        import torch
        import torch.nn.functional as F

        @contextmanager
        def cpu_autocast():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                yield

        policy = torch.nn.Linear(16, 100)
        with cpu_autocast():
            logp = F.log_softmax(policy(torch.randn(2, 16)), dim=-1)  # expect: MP001
        """,
        "MP001",
    )
