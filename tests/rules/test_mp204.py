"""MP204 deviceless-autocast-query: `torch.is_autocast_enabled()` with no device answers for CUDA
only (False inside a CPU region on torch 2.13); `torch.get_autocast_gpu_dtype()` /
`torch.is_autocast_gpu_enabled()` answer for CUDA too, so they are reported where a non-CUDA region
is active or opened in the same file. Reported at the query call.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, line_of, lint, ok

CODE = "MP204"

CASES = [
    bug(
        "custom-op-casts-when-autocast-is-on",
        """
        import torch

        class FusedRMSNorm(torch.nn.Module):
            def forward(self, x):
                if torch.is_autocast_enabled():  # expect: MP204
                    x = x.to(torch.get_autocast_gpu_dtype())
                return rms_norm_kernel(x, self.weight, self.eps)
    """,
    ),
    bug(
        "query-inside-cpu-region",
        """
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            if torch.is_autocast_enabled():  # expect: MP204
                q = q.bfloat16()
            attn = q @ k.transpose(-2, -1)
    """,
    ),
    bug(
        "gpu-dtype-inside-cpu-region",
        """
        import torch

        def attention(q, k, v):
            dtype = torch.get_autocast_gpu_dtype()  # expect: MP204
            return torch.nn.functional.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype))

        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out = attention(q, k, v)
    """,
    ),
    bug(
        "gpu-dtype-in-device-generic-file",
        """
        import torch

        def maybe_cast(x):
            if torch.is_autocast_gpu_enabled():  # expect: MP204
                return x.to(torch.get_autocast_gpu_dtype())  # expect: MP204
            return x

        def train_step(model, batch, device):
            with torch.autocast(device.type, dtype=torch.bfloat16):
                return model(maybe_cast(batch))
    """,
    ),
    bug(
        "xformers-style-helper",
        """
        import torch

        def _get_dtype(x):
            return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else x.dtype  # expect: MP204
    """,
    ),
    bug(
        "query-in-mps-region",
        """
        import torch

        with torch.autocast("mps", dtype=torch.float16):
            enabled = torch.is_autocast_enabled()  # expect: MP204
            logits = model(tokens)
    """,
    ),
    ok(
        "query-with-device-type",
        """
        import torch

        def cast_to_autocast_dtype(x):
            if torch.is_autocast_enabled(x.device.type):
                return x.to(torch.get_autocast_dtype(x.device.type))
            return x
    """,
    ),
    # torch's own autocast tests pass the device by keyword.
    ok(
        "query-with-device-type-keyword",
        """
        import torch

        def check_autocast(self, device, amp_dtype):
            self.assertFalse(torch.is_autocast_enabled(device_type=device))
            with torch.amp.autocast(device_type=device, dtype=amp_dtype):
                self.assertTrue(torch.is_autocast_enabled(device_type=device))
    """,
    ),
    ok(
        "gpu-dtype-in-cuda-only-file",
        """
        import torch

        def maybe_half(x):
            return x.to(torch.get_autocast_gpu_dtype())

        with torch.autocast("cuda", dtype=torch.float16):
            y = model(maybe_half(x))
    """,
    ),
    ok(
        "gpu-dtype-with-cuda-amp-autocast",
        """
        import torch

        with torch.cuda.amp.autocast():
            dtype = torch.get_autocast_gpu_dtype()
            out = kernel(x.to(dtype))
    """,
    ),
    ok(
        "query-with-literal-device",
        """
        import torch

        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.is_autocast_enabled("cpu")
            y = model(x)
    """,
    ),
    ok(
        "cpu-specific-query",
        """
        import torch

        with torch.autocast("cpu"):
            if torch.is_autocast_cpu_enabled():
                y = model(x.bfloat16())
    """,
    ),
    ok(
        "gpu-dtype-in-disabled-cpu-region-only",
        """
        import torch

        with torch.autocast("cuda", dtype=torch.float16):
            with torch.autocast("cuda", enabled=False):
                dtype = torch.get_autocast_gpu_dtype()
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp204(source: str) -> None:
    check(source, CODE)


def test_message_says_the_query_is_false_inside_a_cpu_region() -> None:
    (finding,) = lint(
        """
        import torch
        with torch.autocast("cpu"):
            flag = torch.is_autocast_enabled()
    """,
        CODE,
    )
    assert "cpu bfloat16 autocast region, where it is False" in finding.message


def test_message_names_the_first_non_cuda_region_of_the_file() -> None:
    source = """
        import torch

        def to_autocast_dtype(x):
            return x.to(torch.get_autocast_gpu_dtype())

        def evaluate_cpu(model, batch):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(to_autocast_dtype(batch))

        def evaluate_mps(model, batch):
            with torch.autocast("mps", dtype=torch.float16):
                return model(to_autocast_dtype(batch))
    """
    (finding,) = lint(source, CODE)
    cpu_line = line_of(source, 'autocast("cpu"')
    assert f"this file opens a cpu bfloat16 autocast region (line {cpu_line})" in finding.message


def test_message_makes_no_claim_inside_a_disabled_cpu_region() -> None:
    # CPU autocast is off for the preprocessing; CUDA autocast is on around it, so the query
    # answers True here: the message must not say it is False.
    (finding,) = lint(
        """
        import torch

        with torch.autocast("cuda", dtype=torch.float16):
            with torch.autocast("cpu", enabled=False):
                if torch.is_autocast_enabled():
                    features = features.half()
            logits = model(features)
    """,
        CODE,
    )
    assert "where it is False" not in finding.message
