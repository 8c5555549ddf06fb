"""MP203 deprecated-amp-api: `torch.cuda.amp.*` / `torch.cpu.amp.*` entry points, deprecated in
torch 2.4 (a FutureWarning per call). Reported at the call or decorator when spelled out, at the
import statement when imported by name or through a module alias (its fix rewrites every use).
The fixes themselves are checked by the fixture pairs under tests/fixes/mp203/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mplint.api import lint_paths

from .casekit import bug, check, lint, ok

CODE = "MP203"

CASES = [
    bug(
        "from-import-autocast-and-scaler",
        """
        from torch.cuda.amp import autocast, GradScaler  # expect: MP203

        scaler = GradScaler()
        with autocast():
            loss = model(x).mean()
    """,
    ),
    bug(
        "spelled-out-calls",
        """
        import torch

        scaler = torch.cuda.amp.GradScaler(enabled=args.amp)  # expect: MP203
        for batch in loader:
            with torch.cuda.amp.autocast(enabled=args.amp):  # expect: MP203
                loss = model(**batch).loss
    """,
    ),
    bug(
        "cpu-autocast-decorator-on-forward",
        """
        import torch

        class Classifier(torch.nn.Module):
            @torch.cpu.amp.autocast()  # expect: MP203
            def forward(self, x):
                return self.head(self.body(x))
    """,
    ),
    bug(
        "bare-custom-fwd-bwd-decorators",
        """
        import torch

        class SwiGLU(torch.autograd.Function):
            @staticmethod
            @torch.cuda.amp.custom_fwd  # expect: MP203
            def forward(ctx, x, gate):
                return x * torch.nn.functional.silu(gate)

            @staticmethod
            @torch.cuda.amp.custom_bwd  # expect: MP203
            def backward(ctx, grad):
                return grad, grad
    """,
    ),
    bug(
        "yolov5-module-alias",
        """
        from torch.cuda import amp  # expect: MP203

        scaler = amp.GradScaler(enabled=cuda)
        with amp.autocast(enabled=cuda):
            pred = model(imgs)
    """,
    ),
    bug(
        "timm-style-variable-holds-the-class",
        """
        import torch

        amp_autocast = torch.cuda.amp.autocast
        with amp_autocast():  # expect: MP203
            output = model(input)
    """,
    ),
    bug(
        "grad-scaler-submodule-import",
        """
        from torch.cuda.amp.grad_scaler import GradScaler  # expect: MP203

        scaler = GradScaler(init_scale=2.0**16)
    """,
    ),
    bug(
        "import-inside-function",
        """
        def build_scaler(enabled: bool):
            from torch.cuda.amp import GradScaler  # expect: MP203

            return GradScaler(enabled=enabled)
    """,
    ),
    ok(
        "modern-api",
        """
        import torch

        scaler = torch.amp.GradScaler("cuda", enabled=args.amp)
        with torch.amp.autocast("cuda", dtype=torch.float16, enabled=args.amp):
            loss = model(x).mean()
    """,
    ),
    ok(
        "torch-autocast",
        """
        import torch

        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(x).mean()
    """,
    ),
    ok(
        "modern-imports",
        """
        from torch.amp import GradScaler, autocast, custom_fwd

        scaler = GradScaler("cuda")
    """,
    ),
    ok(
        "amp-availability-helper-is-not-an-entry-point",
        """
        from torch.cuda.amp.common import amp_definitely_not_available

        use_amp = not amp_definitely_not_available()
    """,
    ),
    ok(
        "apex-amp",
        """
        from apex import amp

        model, optimizer = amp.initialize(model, optimizer, opt_level="O1")
        with amp.scale_loss(loss, optimizer) as scaled_loss:
            scaled_loss.backward()
    """,
    ),
    ok(
        "isinstance-check-is-not-a-call",
        """
        import torch

        def uses_scaler(obj) -> bool:
            return isinstance(obj, torch.cuda.amp.GradScaler)
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp203(source: str) -> None:
    check(source, CODE)


def test_import_with_a_use_the_fix_cannot_rewrite_has_no_fix() -> None:
    (finding,) = lint(
        """
        import functools
        from torch.cuda.amp import autocast

        fp16_region = functools.partial(autocast, dtype=torch.float16)
    """,
        CODE,
    )
    assert finding.fix is None


def test_star_args_call_has_no_fix() -> None:
    (finding,) = lint(
        """
        import torch
        with torch.cuda.amp.autocast(*amp_args):
            pass
    """,
        CODE,
    )
    assert finding.fix is None


def test_fixes_are_safe_and_message_names_the_replacement() -> None:
    (finding,) = lint(
        """
        import torch
        scaler = torch.cuda.amp.GradScaler()
    """,
        CODE,
    )
    assert finding.fix is not None and finding.fix.applicability.value == "safe"
    assert 'torch.amp.GradScaler("cuda", ...)' in finding.message


AMP_UTILS = """\
from torch.cuda.amp import autocast


def forward(model, batch):
    with autocast():
        return model(batch)
"""


@pytest.mark.parametrize(
    ("files", "safe"),
    [
        pytest.param({"utils.py": AMP_UTILS, "train.py": "from utils import forward\n"}, True, id="only-its-own-uses"),
        pytest.param(
            {"utils.py": AMP_UTILS, "train.py": "from utils import autocast\nwith autocast():\n    pass\n"},
            False,
            id="re-exported-by-name",
        ),
        pytest.param(
            {"utils.py": AMP_UTILS, "train.py": "import utils\nwith utils.autocast():\n    pass\n"},
            False,
            id="re-exported-as-an-attribute",
        ),
        pytest.param({"utils.py": AMP_UTILS, "train.py": "from utils import *\n"}, False, id="star-imported"),
        pytest.param({"utils.py": AMP_UTILS + '__all__ = ["autocast", "forward"]\n'}, False, id="listed-in-all"),
        pytest.param({"pkg/__init__.py": AMP_UTILS}, False, id="package-init"),
    ],
)
def test_the_import_fix_is_unsafe_when_other_modules_may_call_the_name(
    files: dict[str, str], safe: bool, tmp_path: Path, write_files: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `from utils import autocast; autocast()` elsewhere would lose its device after the rewrite.
    monkeypatch.chdir(write_files(tmp_path, files))

    [finding] = [f for f in lint_paths(["."], select=[CODE]).findings if f.line == 1]

    assert finding.fix is not None
    assert finding.fix.applicability.value == ("safe" if safe else "unsafe")
