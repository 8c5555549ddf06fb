"""MP205 custom-fwd-without-cast-inputs: an autograd.Function whose `forward`, under `custom_fwd`
without `cast_inputs=`, hands its inputs to an extension kernel (compiled module, custom
`torch.ops` namespace, Triton launch). Reported at the kernel call.
"""

from __future__ import annotations

import pytest

from .casekit import bug, check, ok

CODE = "MP205"

CASES = [
    bug(
        "apex-fused-layer-norm",
        """
        import torch
        import fused_layer_norm_cuda
        from torch.cuda.amp import custom_bwd, custom_fwd

        class FusedLayerNormAffineFunction(torch.autograd.Function):
            @staticmethod
            @custom_fwd
            def forward(ctx, input, weight, bias, normalized_shape, eps):
                input_ = input.contiguous()
                output, mean, invvar = fused_layer_norm_cuda.forward_affine(  # expect: MP205
                    input_, normalized_shape, weight, bias, eps
                )
                ctx.save_for_backward(input_, weight, bias, mean, invvar)
                return output

            @staticmethod
            @custom_bwd
            def backward(ctx, grad_output):
                return fused_layer_norm_cuda.backward_affine(grad_output, *ctx.saved_tensors)
    """,
    ),
    bug(
        "mamba-selective-scan",
        """
        import torch
        import selective_scan_cuda
        from torch.amp import custom_fwd

        class SelectiveScanFn(torch.autograd.Function):
            @staticmethod
            @custom_fwd(device_type="cuda")
            def forward(ctx, u, delta, A, B, C, D=None, z=None):
                out, x, *rest = selective_scan_cuda.fwd(u, delta, A, B, C, D, z, None, False)  # expect: MP205
                ctx.save_for_backward(u, delta, A, B, C, D, x)
                return out
    """,
    ),
    bug(
        "package-private-compiled-module",
        """
        import torch
        from torch.autograd import Function
        from mmcv.ops import _C

        class DeformConv2dFunction(Function):
            @staticmethod
            @torch.cuda.amp.custom_fwd
            def forward(ctx, input, offset, weight, stride=1):
                output = input.new_empty(out_shape)
                _C.deform_conv_forward(input, weight, offset, output, stride)  # expect: MP205
                return output
    """,
    ),
    bug(
        "triton-kernel-launch",
        """
        import torch
        import triton
        import triton.language as tl

        @triton.jit
        def _rms_norm_fwd(X, W, Y, stride, N, eps, BLOCK: tl.constexpr):
            pass

        class RMSNorm(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, x, weight, eps):
                x2d = x.reshape(-1, x.shape[-1])
                y = torch.empty_like(x2d)
                _rms_norm_fwd[(x2d.shape[0],)](x2d, weight, y, x2d.stride(0), x2d.shape[1], eps, BLOCK=1024)  # expect: MP205
                return y.view_as(x)
    """,
    ),
    bug(
        "custom-torch-ops-namespace",
        """
        import torch

        class FlashAttnFunc(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda", cast_inputs=None)
            def forward(ctx, q, k, v, softmax_scale):
                out, lse = torch.ops.flash_attn._flash_attn_forward(q, k, v, softmax_scale)  # expect: MP205
                ctx.save_for_backward(q, k, v, out, lse)
                return out
    """,
    ),
    bug(
        "jit-loaded-cpp-extension",
        """
        import torch
        from torch.utils.cpp_extension import load

        lltm_cpp = load(name="lltm", sources=["lltm.cpp", "lltm_kernel.cu"])

        class LLTMFunction(torch.autograd.Function):
            @staticmethod
            @torch.cuda.amp.custom_fwd
            def forward(ctx, input, weights, bias, old_h, old_cell):
                outputs = lltm_cpp.forward(input, weights, bias, old_h, old_cell)  # expect: MP205
                ctx.save_for_backward(*outputs[1:])
                return outputs[0]
    """,
    ),
    bug(
        "a-kernel-reached-through-locals-only",
        """
        import torch
        import rmsnorm_cuda

        class FusedRMSNormFunction(torch.autograd.Function):
            '''RMSNorm over the last dimension, fused.'''

            @staticmethod
            def _flatten(t):
                return t.reshape(-1, t.shape[-1])

            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, hidden_states, weight):
                x2d = hidden_states.reshape(-1, hidden_states.shape[-1])
                w = weight.contiguous()
                y2d = rmsnorm_cuda.forward(x2d, w, 1e-6)  # expect: MP205
                return y2d.view_as(hidden_states)
    """,
    ),
    bug(
        "a-cast-of-something-else-is-no-cast-of-the-inputs",
        """
        import torch
        import fused_dropout_cuda

        class FusedDropoutAdd(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, x, residual, p):
                seed = torch.randint(0, 2**31 - 1, (1,)).to(torch.int64)
                out, mask = fused_dropout_cuda.dropout_add(x, residual, p, seed)  # expect: MP205
                ctx.save_for_backward(mask)
                return out
    """,
    ),
    bug(
        "a-kernel-imported-by-name",
        """
        import torch
        from selective_scan_cuda import fwd as selective_scan_fwd

        class SelectiveScanFn(torch.autograd.Function):
            @staticmethod
            @torch.cuda.amp.custom_fwd
            def forward(ctx, u, delta, A, B, C):
                out, x, *rest = selective_scan_fwd(u, delta, A, B, C, None, None, None, False)  # expect: MP205
                ctx.save_for_backward(u, delta, A, B, C, x)
                return out
    """,
    ),
    ok(
        "names-and-chains-that-are-torch",
        """
        import logging

        import torch
        from torch.nn.functional import silu

        logger = logging.getLogger(__name__)

        class ScaledSiLU(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, x, scale):
                assert len(x.shape) >= 2
                logger.debug("scaled silu on %s", x.shape)
                out = torch.empty_like(x)
                out.copy_(silu(x))
                return torch.sigmoid(x).mul(out) * scale
    """,
    ),
    ok(
        "torch-own-bindings",
        """
        import torch

        class TanhGelu(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return torch._C._nn.gelu(x, approximate="tanh")
    """,
    ),
    ok(
        "cast-inputs-from-a-call-or-a-constant",
        """
        import torch
        import fused_layer_norm_cuda
        from torch.amp import custom_fwd

        COMPUTE_DTYPE = torch.float32

        class FusedLayerNorm(torch.autograd.Function):
            @staticmethod
            @custom_fwd(device_type="cuda", cast_inputs=COMPUTE_DTYPE)
            def forward(ctx, x, weight, bias, eps):
                return fused_layer_norm_cuda.forward_affine(x, weight.shape, weight, bias, eps)[0]

        class FusedRMSNorm(torch.autograd.Function):
            @staticmethod
            @custom_fwd(device_type="cuda", cast_inputs=torch.get_autocast_dtype("cuda"))
            def forward(ctx, x, weight, eps):
                return fused_layer_norm_cuda.rms_forward_affine(x, weight.shape, weight, eps)[0]
    """,
    ),
    ok(
        "backward-only-base-class",
        """
        import torch
        import swiglu_cuda
        from torch.amp import custom_bwd, custom_fwd

        class _SwiGLUBackward(torch.autograd.Function):
            '''The backward shared by the fused SwiGLU variants.'''

            @staticmethod
            @custom_bwd(device_type="cuda")
            def backward(ctx, grad):
                x, gate = ctx.saved_tensors
                return swiglu_cuda.backward(grad, x, gate)
    """,
    ),
    ok(
        "cast-inputs-set",
        """
        import torch
        import fused_layer_norm_cuda

        class FusedLayerNorm(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
            def forward(ctx, x, weight, bias, eps):
                return fused_layer_norm_cuda.forward_affine(x, weight.shape, weight, bias, eps)[0]
    """,
    ),
    ok(
        "forward-casts-its-inputs",
        """
        import torch
        import causal_conv1d_cuda
        from torch.amp import custom_fwd

        class CausalConv1dFn(torch.autograd.Function):
            @staticmethod
            @custom_fwd(device_type="cuda")
            def forward(ctx, x, weight, bias=None):
                weight = weight.to(x.dtype)
                bias = bias.to(x.dtype) if bias is not None else None
                return causal_conv1d_cuda.causal_conv1d_fwd(x, weight, bias, None, True)
    """,
    ),
    ok(
        "only-torch-ops",
        """
        import torch

        class ScaledSiLU(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, x, scale):
                ctx.save_for_backward(x)
                return torch.nn.functional.silu(x) * scale
    """,
    ),
    ok(
        "no-custom-fwd",
        """
        import torch
        import my_ext_cuda

        class Gather(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, index):
                return my_ext_cuda.gather(x, index)
    """,
    ),
    ok(
        "aten-namespace-is-torch",
        """
        import torch

        class Mm(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, a, b):
                return torch.ops.aten.mm(a, b)
    """,
    ),
    ok(
        "not-an-autograd-function",
        """
        import torch
        import fused_dense_cuda

        class FusedDense(torch.nn.Module):
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(self, x):
                return fused_dense_cuda.linear_bias_forward(x, self.weight, self.bias)
    """,
    ),
    ok(
        "extension-call-on-constants-only",
        """
        import torch
        import my_kernels_cuda

        class Noise(torch.autograd.Function):
            @staticmethod
            @torch.amp.custom_fwd(device_type="cuda")
            def forward(ctx, x):
                seed = torch.initial_seed() % SEED_RANGE
                my_kernels_cuda.set_seed(seed)
                return x + torch.randn_like(x)
    """,
    ),
]


@pytest.mark.parametrize("source", CASES)
def test_mp205(source: str) -> None:
    check(source, CODE)
