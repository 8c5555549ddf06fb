"""Fixtures for the runtime verifier's tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.runtime.support import torch_fingerprint


@pytest.fixture
def torch_left_as_it_was() -> Callable[[], None]:
    """Call the returned check after a run: it fails if the run left anything behind."""
    before = torch_fingerprint()

    def check() -> None:
        after = torch_fingerprint()
        changed = sorted(key for key in before if before[key] != after[key])
        assert not changed, f"left changed: {changed}"

    return check
