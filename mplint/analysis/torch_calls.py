"""What torch's calls compute: the dtype or device a value names, autocast regions (`torch.autocast`
and the older entry points), models loaded with a dtype, tensors created, and the output of a torch
function or tensor method under the active region (`lowered`: the ops autocast runs in low
precision).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api as api
from mplint.analysis.bindings import element_of, literal_values
from mplint.analysis.expressions import PASSTHROUGH_BUILTINS
from mplint.analysis.scopes import Context
from mplint.analysis.values import (
    UNKNOWN,
    Kind,
    Origin,
    Precision,
    Region,
    Value,
    is_none,
    is_tensor_like,
    join,
    matmul,
    promote,
    selected,
)

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter


def lowered(self: Interpreter, value: Value, region: Region | None) -> Value:
    """An op autocast runs in low precision (matmul, linear, a module's forward) inside `region`."""
    value = value.with_(kind=Kind.TENSOR)
    if region is None or region.enabled is False:
        return value
    tainted = value.with_(region=region)
    if region.enabled is None or not region.precision.is_low:
        return tainted.with_(precision=Precision.UNKNOWN, origin=None) if not value.precision.is_low else tainted
    origin = Origin("", f"computed under {region.describe()}", region.path, region.node)
    return tainted.with_(precision=region.precision, origin=origin)


def dtype_value(self: Interpreter, value: Value) -> Precision | None:
    """The precision a dtype-like value names (`torch.bfloat16`, `"bf16"`, `torch.HalfTensor`)."""
    if value.kind is Kind.DTYPE:
        return value.precision
    if value.kind is Kind.NAME:
        return api.dtype_of_name(value.name or "")
    if value.kind is Kind.CONST:
        if isinstance(value.payload, str):
            return api.dtype_of_string(value.payload)
        if isinstance(value.payload, frozenset):
            found = [api.dtype_of_string(choice) for choice in value.payload if isinstance(choice, str)]
            known = [precision for precision in found if precision is not None]
            if found and len(known) == len(found):
                result = known[0]
                for precision in known[1:]:
                    result = result.join(precision)
                return result
    return None


def autocast(
    self: Interpreter, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    fixed_device, fixed_dtype = api.AUTOCAST_ENTRY_POINTS[function]
    device: str | None = fixed_device
    if fixed_device is None:
        device_arg = kwargs.get("device_type", args[0] if args else UNKNOWN)
        device = self.device_value(device_arg)
    # The dtype is the second parameter of every entry point: `torch.autocast(device_type, dtype)`,
    # `torch.cuda.amp.autocast(enabled, dtype)`.
    dtype_arg = kwargs.get("dtype", args[1] if len(args) > 1 else None)
    if dtype_arg is not None and not is_none(dtype_arg):
        precision = self.dtype_value(dtype_arg) or Precision.UNKNOWN
    else:
        precision = fixed_dtype or (
            api.AUTOCAST_DEFAULT_DTYPE.get(device, Precision.UNKNOWN) if device else Precision.UNKNOWN
        )
    otherwise = None
    if dtype_arg is not None and dtype_arg.otherwise is not None:
        alternative, condition = dtype_arg.otherwise
        other = self.dtype_value(alternative)
        if other is not None and other is not precision:
            otherwise = (other, condition)
    enabled_arg = kwargs.get("enabled", args[0] if fixed_device is not None and args else None)
    enabled: bool | None = True
    if enabled_arg is not None:
        enabled = enabled_arg.const if isinstance(enabled_arg.const, bool) else None
    region = Region(device, precision, enabled, ctx.scope.module.path, node, otherwise)
    return Value(Kind.AUTOCAST, payload=region)


def device_value(self: Interpreter, value: Value) -> str | None:
    text = value.const
    if isinstance(text, str):
        return text.split(":")[0].strip() or None
    return None


def loaded_model(self: Interpreter, node: cst.Call, path: str, kwargs: dict[str, Value]) -> Value:
    for keyword in ("torch_dtype", "dtype"):
        if keyword in kwargs:
            precision = self.dtype_value(kwargs[keyword]) or Precision.UNKNOWN
            origin = Origin("", f"loaded in {precision.value}", path, node) if precision.is_low else None
            return Value(Kind.MODULE, precision, origin=origin, identity=node)
    if any(key in kwargs for key in ("load_in_8bit", "load_in_4bit", "quantization_config")):
        return UNKNOWN
    # Without a dtype, transformers loads in torch's default dtype: half after
    # `torch.set_default_dtype(torch.float16)` (OpenLMLab/LOMO); otherwise the checkpoint's or fp32.
    default, set_at = self.default_dtype_at(path, Precision.UNKNOWN)
    if default.is_low:
        return Value(Kind.MODULE, default, origin=set_at, identity=node)
    return Value(Kind.MODULE, Precision.UNKNOWN, identity=node)


def built_module(
    self: Interpreter, node: cst.Call, path: str, function: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    """`nn.Linear(..., dtype=cfg["dtype"])`: a module of torch.nn whose parameters are built in the
    dtype it is given, else in the default dtype. Its class (`function`) is its payload: a loop
    over a model's submodules casts it by its class. A module that runs one function
    (`nn.LogSoftmax(dim=-1)`) keeps the settings it is built with as its items, handed to that
    function when it is called."""
    functional = api.functional_module(function)
    settings = {**dict(zip(functional[1], args, strict=False)), **kwargs} if functional is not None else {}
    requested = self.dtype_value(kwargs["dtype"]) if "dtype" in kwargs else None
    if requested is None:
        container = api.last_part(function) in api.MODULE_CONTAINERS
        children = _children([*args, *kwargs.values()]) if container else ()
        held = _held_precision(children)
        if held is not None:
            return Value(
                Kind.MODULE, held.precision, origin=held.origin, payload=function, items=children, identity=node
            )
        precision, origin = self.default_dtype_at(path, Precision.FP32)
        items = children if container else tuple(sorted(settings.items()))
        return Value(Kind.MODULE, precision, origin=origin, payload=function, items=items, identity=node)
    origin = Origin("", f"built in {requested.value}", path, node) if requested.is_low else None
    return Value(Kind.MODULE, requested, origin=origin, payload=function, identity=node)


def _children(contents: list[Value]) -> tuple[tuple[str, Value], ...]:
    """The submodules a container (`nn.Sequential(a, b)`, `nn.ModuleList([a, b])`, `nn.ModuleDict({"mlp":
    m})`) is built holding, as torch names them ("0", "1", "mlp"); none where they are not all written
    out as modules, or are a generated table of layers."""
    listed = literal_values(contents[0]) if len(contents) == 1 else None
    if len(contents) == 1 and contents[0].kind is Kind.DICT:
        found = [(key, value) for key, value in contents[0].items if isinstance(key, str)]
    else:
        found = [(str(index), value) for index, value in enumerate(listed if listed is not None else contents)]
    if len(found) > _MOST_HELD or not all(value.kind is Kind.MODULE for _, value in found):
        return ()
    return tuple(found)


def _held_precision(children: tuple[tuple[str, Value], ...]) -> Value | None:
    """The module a container is as low as, when every module it holds is built or cast in the same
    half dtype (moondream's text model, each layer `dtype=dtype`; beyond-nanogpt's bf16-built blocks);
    None when one is not, or it holds none."""
    modules = [module for _, module in children if not _parameterless(module)]
    if not modules or not modules[0].precision.is_low:
        return None
    return modules[0] if all(module.precision is modules[0].precision for module in modules) else None


def _parameterless(module: Value) -> bool:
    """A torch.nn module holding no parameters (`nn.ReLU()`, `nn.Dropout(0.1)`)."""
    return isinstance(module.payload, str) and api.last_part(module.payload) in api.PARAMETERLESS_MODULES


# How many modules a container's precision is read from (a generated table of layers is not).
_MOST_HELD = 64


def created_tensor(
    self: Interpreter, node: cst.Call, path: str, leaf: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    if "dtype" in kwargs:
        precision = self.dtype_value(kwargs["dtype"]) or Precision.UNKNOWN
        origin = Origin("", "created", path, node) if precision.is_low else None
        return Value(Kind.TENSOR, precision, origin=origin)
    if leaf.endswith("_like") and args:
        # `torch.ones_like(t)` of a tensor, or of a value of known dtype (`t = temps.to(dev, logits.dtype)`)
        return args[0].with_(kind=Kind.TENSOR, op=None) if is_tensor_like(args[0]) else UNKNOWN
    if leaf == "tensor":
        return UNKNOWN  # integer data gives an integer tensor
    precision, origin = self.default_dtype_at(path, Precision.FP32)
    return Value(Kind.TENSOR, precision, origin=origin)


# Products of two tensors of one dtype (`values.matmul`).
_MATMULS = frozenset({"matmul", "mm", "bmm"})
# torch functions over a sequence of tensors, giving one of their dtype.
_JOINING_OPS = frozenset({"cat", "concat", "concatenate", "stack", "hstack", "vstack"})


def tensor_op(
    self: Interpreter,
    node: cst.Call,
    ctx: Context,
    op: str,
    function: str | None,
    tensor: Value,
    args: list[Value],
    kwargs: dict[str, Value],
) -> Value:
    """A torch function or tensor method on `tensor`: its output precision under the active region."""
    region = ctx.region
    if function in ("zip", "enumerate"):
        elements = tuple(element_of(arg) for arg in args)
        return Value(Kind.ANY, op="zip", payload=(UNKNOWN, *elements) if function == "enumerate" else elements)
    # `getattr(obj, "name")` never gets here (`eval_call` reads it as the attribute); by a name
    # not known, it is the object where that is a tensor or parameters.
    if function in PASSTHROUGH_BUILTINS or (function == "getattr" and len(args) >= 2):
        if function == "filter" and len(args) >= 2:
            return selected(args[1])
        return tensor if tensor.kind in (Kind.PARAMS, Kind.TENSOR) else UNKNOWN
    if function == "dict":
        return Value(Kind.DICT, items=tuple(kwargs.items()))
    if op in _JOINING_OPS and function is not None:
        # `torch.cat([a, b])`, `torch.stack(outs)` of a list appended to: the tensors it lists, joined.
        listed = literal_values(tensor)
        if listed and all(element.kind is Kind.TENSOR for element in listed):
            tensor = functools.reduce(join, listed)
    if op == "where" and function is not None and len(args) == 3:
        # `torch.where(mask, logits, -100)`: the values chosen between, not the mask (a Python
        # number keeps the tensor's dtype).
        return promote(args[1], args[2])
    if op in _MATMULS and len(args) == (2 if function is not None else 1):
        return self.lowered(matmul(*args) if function is not None else matmul(tensor, args[0]), region)
    if tensor.kind not in (Kind.TENSOR, Kind.ANY) or (
        tensor.kind is Kind.ANY and tensor.precision is Precision.UNKNOWN and tensor.region is None
    ):
        if op in api.AUTOCAST_LOWERED_OPS:
            return self.lowered(Value(Kind.TENSOR), region)
        return UNKNOWN
    tensor = tensor.with_(kind=Kind.TENSOR)
    if op in api.AUTOCAST_LOWERED_OPS:
        other = args[1] if function is not None and len(args) > 1 else (args[0] if args else UNKNOWN)
        return self.lowered(promote(tensor, other), region)
    dtype = kwargs.get("dtype")
    requested = self.dtype_value(dtype) if dtype is not None else None
    if requested is not None:  # `logits.softmax(-1, dtype=torch.float16)`: half from here on
        origin = Origin("", f"computed in {requested.value}", ctx.scope.module.path, node) if requested.is_low else None
        return tensor.with_(precision=requested, origin=origin, op=op)
    if op in api.SOFTMAX_OPS or op in (
        "cross_entropy",
        "nll_loss",
        "sum",
        "layer_norm",
        "pow",
        "rsqrt",
        "reciprocal",
        "normalize",
    ):
        upcasts = api.region_upcasts(region, op)
        if upcasts is None:
            return tensor.with_(precision=Precision.UNKNOWN, origin=None, op=op)
        if upcasts:
            return tensor.with_(precision=Precision.FP32, origin=None, op=op)
        return tensor.with_(op=op)
    if op == "detach":
        return tensor.with_(region=None, scaled=False)  # no gradient flows back through it
    if op in api.PRESERVING_OPS:
        return tensor
    if op in ("backward", "item", "tolist", "numpy", "argmax", "argmin", "long", "int", "bool", "size", "dim"):
        return UNKNOWN
    return tensor.with_(precision=Precision.UNKNOWN, origin=None, op=op) if tensor.region else UNKNOWN
