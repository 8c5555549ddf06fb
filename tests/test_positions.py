"""`mplint.positions` must give exactly libcst's PositionProvider ranges: it re-implements its
code generation state (faster), so a libcst upgrade that changes how positions are recorded shows
up here, not as findings at the wrong column."""

from __future__ import annotations

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, PositionProvider

from mplint.positions import node_ranges

SOURCES = {
    "training step": '''\
import torch
import torch.nn.functional as F


@torch.no_grad()
def rollout(model, batch):
    with torch.autocast("cuda", dtype=torch.bfloat16), torch.inference_mode():
        logits = model(**batch).logits
    return F.log_softmax(logits, dim=-1)


class Trainer:
    """Docstring
    over lines."""

    def step(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()  # comment
        if (x := 1) and not y:
            pass
        elif z:
            raise ValueError(f"{loss!r:>10} and {x}")
        else:
            del w[1:2, ::3]
''',
    "crlf, tabs, continuation and non-ASCII": "x = (1 +\r\n\t2)\r\nif x:\r\n\ty = 'é' + \\\r\n\t\t'ü'\r\n",
    "lambdas, comprehensions, decorators with arguments": (
        "@a.b(c=1)\n@d\nasync def f(*args, k: int = 2, **kw) -> None:\n"
        "    return [lambda q=i: q for i in range(3) if i], {k: v async for k, v in g()}\n"
    ),
    "try, match and global": (
        "def f(v):\n    global G\n    try:\n        pass\n    except* (A, B) as e:\n        pass\n"
        "    finally:\n        pass\n    match v:\n        case [1, *rest] if rest:\n            pass\n"
        "        case {'k': _}:\n            pass\n"
    ),
}


@pytest.mark.parametrize("source", SOURCES.values(), ids=list(SOURCES))
def test_ranges_are_libcsts(source: str) -> None:
    module = cst.parse_module(source)
    expected = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    ranges = node_ranges(module)
    assert len(ranges) == len(expected)
    for node, found in expected.items():
        assert ranges[id(node)] == (found.start.line, found.start.column, found.end.line, found.end.column), node
