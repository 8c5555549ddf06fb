"""MP203 deprecated-amp-api: `torch.cuda.amp.*` / `torch.cpu.amp.*` entry points, deprecated in
torch 2.4 (a FutureWarning per call). Reported at the call or decorator when spelled out, at the
import statement when imported by name or through a module alias (its fix rewrites every use).
The fixes themselves are checked by the fixture pairs under tests/fixes/mp203/.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mplint.api import fix_source, lint_paths

from .casekit import bug, check, line_of, lint, ok

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
    bug(
        "torch-and-an-alias-imported-together",
        """
        import torch, torch.cuda.amp as cuda_amp  # expect: MP203

        scaler = torch.cuda.amp.GradScaler()  # expect: MP203
        with cuda_amp.autocast():
            loss = model(x)
    """,
    ),
    bug(
        "module-alias-with-a-use-that-is-no-entry-point",
        """
        from torch.cuda import amp

        use_amp = not amp.common.amp_definitely_not_available()
        scaler = amp.GradScaler(enabled=use_amp)  # expect: MP203
    """,
    ),
    bug(
        "module-alias-decorator-reported-once-at-the-import",
        """
        import torch
        from torch.cuda import amp  # expect: MP203

        class FusedGelu(torch.autograd.Function):
            @staticmethod
            @amp.custom_fwd
            def forward(ctx, x):
                return gelu_kernel(x)
    """,
    ),
    ok(
        "amp-or-a-null-context-chosen-at-import",
        """
        if args.amp:
            from torch.cuda.amp import autocast
        else:
            from contextlib import nullcontext as autocast

        with autocast():
            loss = model(x)
    """,
    ),
    ok(
        "other-attribute-decorators",
        """
        import functools
        import torch

        @torch.jit.script
        def fused_gelu(x):
            return x * 0.5 * (1.0 + torch.erf(x / 1.41421))

        @functools.lru_cache
        def build_mask(n):
            return torch.ones(n, n).tril()
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


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            """
            from torch.cuda import amp, is_available

            scaler = amp.GradScaler(enabled=is_available())
            """,
            id="a-name-that-did-not-move",
        ),
        pytest.param(
            """
            import os, torch.cuda.amp as cuda_amp

            scaler = cuda_amp.GradScaler(enabled=os.environ.get("AMP") == "1")
            """,
            id="one-import-of-several-modules",
        ),
        pytest.param(
            """
            import torch
            from torch.cuda.amp import custom_bwd, custom_fwd

            maybe_fwd = custom_fwd if use_amp else (lambda fn: fn)

            class ScaledSiLU(torch.autograd.Function):
                @staticmethod
                @custom_bwd
                def backward(ctx, grad):
                    return grad
            """,
            id="a-decorator-held-in-a-variable",
        ),
        pytest.param(
            """
            from torch.cuda.amp import autocast

            @autocast
            def evaluate(model, batch):
                return model(batch)
            """,
            id="a-context-manager-as-a-bare-decorator",
        ),
    ],
)
def test_an_import_the_fix_cannot_rewrite_whole_is_reported_without_a_fix(source: str) -> None:
    (finding,) = lint(source, CODE)

    assert (finding.line, finding.fix) == (line_of(source, "torch.cuda"), None)


def test_the_import_message_spells_the_statement_on_one_line() -> None:
    (finding,) = lint(
        """
        from torch.cuda.amp import (
            GradScaler,
            autocast as amp_autocast,
        )

        scaler = GradScaler()
    """,
        CODE,
    )

    assert finding.line == 2
    assert finding.message.startswith("`from torch.cuda.amp import GradScaler, autocast` imports deprecated")


def test_a_crlf_file_keeps_its_line_breaks_when_the_device_goes_on_a_line_of_its_own() -> None:
    source = "import torch\r\n\r\nwith torch.cuda.amp.autocast(\r\n    enabled=use_amp,\r\n):\r\n    out = model(x)\r\n"

    (change,) = fix_source(source, "train.py", select=[CODE]).changes

    assert change.after == source.replace("torch.cuda.amp.autocast(\r\n", 'torch.amp.autocast(\r\n    "cuda",\r\n')


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
        pytest.param(
            {"utils.py": AMP_UTILS + 'PRECISION_CHOICES = ["autocast", "fp32"]\n'}, True, id="a-list-that-is-not-all"
        ),
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


@pytest.mark.parametrize(
    "source",
    [
        ok(
            "a-fallback-import-for-old-torch",
            """
            import torch
            try:
                from torch.amp import autocast
            except ImportError:
                from torch.cuda.amp import autocast

            model = torch.nn.Linear(8, 8)
            with autocast("cuda", dtype=torch.bfloat16):
                y = model(torch.randn(2, 8))
            """,
        ),
        bug(
            "the-deprecated-import-in-the-try-body",
            """
            import torch
            try:
                from torch.cuda.amp import autocast  # expect: MP203
            except ImportError:
                autocast = None

            model = torch.nn.Linear(8, 8)
            with autocast(dtype=torch.bfloat16):
                y = model(torch.randn(2, 8))
            """,
        ),
    ],
)
def test_a_try_except_import_is_either_binding_not_the_fallback(source: str) -> None:
    check(source, "MP203")
