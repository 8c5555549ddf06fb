"""Shared fixtures: keep this small; fixtures used by one test module live in that module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

# A policy in bf16 whose log-probs are taken without a cast: MP001 reports line 4.
UNCAST_LOG_SOFTMAX = """\
import torch
import torch.nn.functional as F
model = torch.nn.Linear(4, 4).to(torch.bfloat16)
logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)
"""

# A training script cut off mid-edit: it mentions bfloat16, so the engine's prefilter parses
# it, and it does not parse (MP000).
UNPARSABLE = """\
import torch
model = model.to(torch.bfloat16
logp = model(batch).log_softmax(-1)
"""

FileTree = Mapping[str, "str | bytes"]


def _write_files(root: Path, files: FileTree) -> Path:
    """Create `files` ({relative path: text or bytes}) under `root`, with their parent folders."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def write_files() -> Callable[[Path, FileTree], Path]:
    """`write_files(tmp_path, {"pkg/train.py": "..."})` writes the tree and returns its root."""
    return _write_files


@pytest.fixture
def uncast_log_softmax() -> str:
    return UNCAST_LOG_SOFTMAX


@pytest.fixture
def unparsable() -> str:
    return UNPARSABLE
