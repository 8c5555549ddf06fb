"""pytest plugin: the `mp_audit` fixture asserts a training step is precision-clean.

    def test_train_step_is_precision_clean(mp_audit):
        with mp_audit() as report:
            train_step(model, batch)
        report.assert_clean()

`--mplint-device` picks the device (auto: CUDA on a GPU runner, else CUDA emulated on the CPU).
Importing this module does not import torch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from mplint.runtime import DEVICES, audit


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("mplint").addoption(
        "--mplint-device",
        choices=DEVICES,
        default="auto",
        help="where mp_audit runs the audited code: auto, cuda, cpu or emulate-cuda",
    )


@pytest.fixture
def mp_audit(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`with mp_audit() as report: ...` records the block; `report.assert_clean()` checks it."""
    return functools.partial(audit, request.config.getoption("--mplint-device"))
