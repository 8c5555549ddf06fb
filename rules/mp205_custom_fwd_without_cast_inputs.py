from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api
from mplint.names import ImportTable, import_table
from mplint.rule import Rule
from mplint.tree import keyword_arg, statements, walk

if TYPE_CHECKING:
    from mplint.run.engine import FileContext

AUTOGRAD_FUNCTIONS = frozenset(
    {
        "torch.autograd.Function",
        "torch.autograd.function.Function",
        "torch.autograd.InplaceFunction",
        "torch.autograd.function.InplaceFunction",
    }
)
CUSTOM_FWD = frozenset(
    {
        "torch.amp.custom_fwd",
        "torch.amp.autocast_mode.custom_fwd",
        "torch.cuda.amp.custom_fwd",
        "torch.cuda.amp.autocast_mode.custom_fwd",
    }
)
# Module names that mark a compiled extension: `mylib._C`, `fused_layer_norm_cuda`, `amp_C`, `my_ext`.
EXTENSION_MODULE_SUFFIXES = ("_C", "_cuda", "_cpp", "_ext", "_kernels", "_cuda_kernel")
CPP_EXTENSION_LOADERS = frozenset({"torch.utils.cpp_extension.load", "torch.utils.cpp_extension.load_inline"})
# `torch.ops.<namespace>.<op>`: torch's own namespaces; any other is a registered extension.
TORCH_OP_NAMESPACES = frozenset({"aten", "prims", "quantized", "_c10d_functional", "c10d", "profiler"})
CAST_METHODS = frozenset({*torch_api.CAST_METHODS, "to", "type", "type_as"})


class CustomFwdWithoutCastInputs(Rule):
    """An `autograd.Function` under `@custom_fwd` without `cast_inputs=` hands its inputs to an extension kernel.

    ## What it does
    Finds `torch.autograd.Function` subclasses whose `forward` is decorated with `custom_fwd`
    (`torch.amp.custom_fwd(device_type=...)` or the older `torch.cuda.amp.custom_fwd`) without
    `cast_inputs=`, and that pass the forward's inputs (or values computed from them) to an
    extension op: a function of a compiled module (`fused_layer_norm_cuda.forward`, `mylib._C.op`,
    a module built by `torch.utils.cpp_extension.load`), a custom `torch.ops.<lib>.<op>`, or a
    Triton/Numba kernel launch `kernel[grid](...)`. It stays quiet when the forward casts its
    inputs itself (`.float()`, `.to(dtype)`, `.type_as(...)`) or sets `cast_inputs`.

    ## Why is this bad
    `custom_fwd` without `cast_inputs` runs `forward` with autocast still enabled and leaves the
    inputs as they arrive. Under autocast, activations coming out of matmuls are float16/bfloat16
    while parameters and buffers (weights, biases, norms) stay float32, so the kernel gets mixed
    dtypes. torch's own ops would cast them; an extension kernel does not: it fails with
    `expected scalar type Half but found Float` (apex, mamba `selective_scan`, DCNv2 and
    `causal_conv1d` issues) or, when it reads raw pointers without checking, computes garbage.

    ## Example
    ```python
    class FusedLayerNormFunction(torch.autograd.Function):
        @staticmethod
        @torch.amp.custom_fwd(device_type="cuda")
        def forward(ctx, x, weight, bias, eps):
            out, mean, invvar = fused_layer_norm_cuda.forward_affine(x, weight.shape, weight, bias, eps)
            ...
    ```

    ## Fix
    Tell `custom_fwd` the dtype the kernel expects: the inputs are cast to it and autocast is
    disabled inside `forward` (the backward runs in the same dtype):
    ```python
        @staticmethod
        @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
        def forward(ctx, x, weight, bias, eps):
    ```
    Or cast the inputs to a common dtype inside `forward` before the call.
    """

    CODE = "MP205"
    NAME = "custom-fwd-without-cast-inputs"
    MESSAGE = (
        "`{op}` gets the inputs of {function}.forward, decorated with custom_fwd without cast_inputs: under "
        "autocast they arrive mixed float16/float32 and an extension kernel does not cast them; "
        "pass cast_inputs=<the dtype the kernel expects>"
    )
    TRIGGERS = frozenset({"custom_fwd"})
    SYNTACTIC = True  # it reads class bodies and decorators, not facts
    VALID = (
        """
import torch
import fused_layer_norm_cuda
class FusedLayerNorm(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, x, weight, bias):
        return fused_layer_norm_cuda.forward(x, weight, bias)
""",
    )
    INVALID = (
        """
import torch
import fused_layer_norm_cuda
class FusedLayerNorm(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx, x, weight, bias):
        return fused_layer_norm_cuda.forward(x, weight, bias)
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.names: ImportTable | None = None
        self.loaded_extensions: set[str] = set()

    def visit_Module(self, node: cst.Module) -> None:
        self.names = import_table(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        """`ext = load(name="ext", sources=[...])`: `ext` is a compiled module."""
        if isinstance(node.value, cst.Call) and self._resolve(node.value.func) in CPP_EXTENSION_LOADERS:
            for target in node.targets:
                if isinstance(target.target, cst.Name):
                    self.loaded_extensions.add(target.target.value)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        if not any(self._resolve(base.value) in AUTOGRAD_FUNCTIONS for base in node.bases if not base.star):
            return
        forward = next(
            (
                statement
                for statement in statements(node.body)
                if isinstance(statement, cst.FunctionDef) and statement.name.value == "forward"
            ),
            None,
        )
        if forward is None or not self._custom_fwd_without_cast_inputs(forward):
            return
        inputs = _input_names(forward)
        if _casts_inputs(forward, inputs):
            return
        for call in _calls(forward):
            op = self._extension_op(call)
            if op is not None and any(_mentions(arg.value, inputs) for arg in call.args):
                self.report(call, self.MESSAGE.format(op=op, function=node.name.value))

    def _resolve(self, expression: cst.BaseExpression) -> str | None:
        assert self.names is not None
        return self.names.resolve(expression)

    def _custom_fwd_without_cast_inputs(self, forward: cst.FunctionDef) -> bool:
        for decorator in forward.decorators:
            expression = decorator.decorator
            call = expression if isinstance(expression, cst.Call) else None
            if self._resolve(call.func if call is not None else expression) not in CUSTOM_FWD:
                continue
            cast = keyword_arg(call, "cast_inputs") if call is not None else None
            return cast is None or (isinstance(cast, cst.Name) and cast.value == "None")
        return False

    def _extension_op(self, call: cst.Call) -> str | None:
        """How to name `call` when it runs an extension kernel, else None."""
        func = call.func
        if isinstance(func, cst.Subscript):
            return f"{_spelling(func.value)}[...]"  # a Triton / Numba kernel launch
        if not isinstance(func, cst.Attribute):
            target = self._resolve(func)
            return _spelling(func) if target is not None and _is_extension_module(target.rpartition(".")[0]) else None
        module = func.value
        if isinstance(module, cst.Name) and module.value in self.loaded_extensions:
            return _spelling(func)
        target = self._resolve(module)
        if target is None:
            return None
        if target.startswith("torch.ops."):
            namespace = target.split(".")[2]
            return _spelling(func) if namespace not in TORCH_OP_NAMESPACES else None
        return _spelling(func) if _is_extension_module(target) else None


def _is_extension_module(dotted: str) -> bool:
    if dotted.startswith("torch"):
        return False  # `torch._C`: torch's own bindings cast like any torch op
    return any(part.endswith(EXTENSION_MODULE_SUFFIXES) for part in dotted.split(".") if part)


def _calls(function: cst.FunctionDef) -> list[cst.Call]:
    """Every call in the function's body, in source order."""
    return [node for node in walk(function.body) if isinstance(node, cst.Call)]


def _input_names(forward: cst.FunctionDef) -> set[str]:
    """The forward's inputs (every parameter but `ctx`) and the locals computed from them."""
    params = [*forward.params.posonly_params, *forward.params.params, *forward.params.kwonly_params]
    names = {param.name.value for param in params[1:]}
    assignments = [node for node in walk(forward.body) if isinstance(node, cst.Assign)]
    for assign in assignments:  # in source order: `x2d = x.view(-1, n)`
        if _mentions(assign.value, names):
            for target in assign.targets:
                names.update(name.value for name in walk(target.target) if isinstance(name, cst.Name))
    return names


def _casts_inputs(forward: cst.FunctionDef, inputs: set[str]) -> bool:
    """Whether `forward` casts an input itself (`x.float()`, `weight.to(x.dtype)`, `b.type_as(x)`)."""
    return any(
        isinstance(call.func, cst.Attribute)
        and call.func.attr.value in CAST_METHODS
        and _mentions(call.func.value, inputs)
        for call in _calls(forward)
    )


def _mentions(expression: cst.CSTNode, names: set[str]) -> bool:
    """Whether `expression` reads one of `names` (the inputs reach the call through it)."""
    return any(isinstance(node, cst.Name) and node.value in names for node in walk(expression))


def _spelling(node: cst.BaseExpression) -> str:
    """The expression's code as written."""
    return cst.Module([]).code_for_node(node)
