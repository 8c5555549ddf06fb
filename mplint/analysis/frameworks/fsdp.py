"""FSDP and FSDP2, as far as precision goes: what a mixed precision policy does to a sharded model's
compute, its outputs and the parameters its optimizer steps.

Read from PyTorch's sources (torch 2.13.0's wheel for FSDP1; pytorch/pytorch main for FSDP2):
- `torch/distributed/fsdp/api.py` `MixedPrecision(param_dtype, reduce_dtype, buffer_dtype,
  keep_low_precision_grads, cast_forward_inputs, cast_root_forward_inputs=True)`: `param_dtype` is
  the dtype of the parameters during forward and backward, hence of the computation; outside them
  the sharded parameters keep their original dtype (the optimizer steps those: no MP003 over an
  fp32 model). The root casts its floating inputs to `param_dtype`; nothing casts the outputs,
  which come out in the compute dtype.
- `torch/distributed/_composable/fsdp/_fsdp_api.py` `MixedPrecisionPolicy(param_dtype=None,
  reduce_dtype=None, output_dtype=None, cast_forward_inputs=True)`: `param_dtype` is the unsharded
  parameters' dtype and so the compute dtype (None: the original dtype); "the optimizer step uses
  the sharded parameter in the original dtype"; `output_dtype` casts the floating forward outputs.
- `fully_shard(module, mp_policy=...)` shards in place and returns the module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.scopes import Context
from mplint.analysis.values import UNKNOWN, Kind, Origin, Precision, Value, recast

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

POLICIES = frozenset({"MixedPrecision", "MixedPrecisionPolicy"})
WRAPPERS = frozenset({"FullyShardedDataParallel", "FSDP", "fully_shard"})
POLICY_KEYWORDS = ("mixed_precision", "mp_policy")
POLICY = "fsdp: mixed precision policy"
# Precisions a policy names: a dtype, or None for the module's own.
Compute = Precision | None


def is_fsdp(function: str) -> bool:
    return function.startswith("torch.distributed.") and function.rpartition(".")[2] in POLICIES | WRAPPERS


def call(
    self: Interpreter, node: cst.Call, ctx: Context, function: str, args: list[Value], kwargs: dict[str, Value]
) -> Value:
    leaf = function.rpartition(".")[2]
    if leaf in POLICIES:
        return policy(self, leaf, args, kwargs)
    model = args[0] if args else kwargs.get("module", UNKNOWN)
    given = next((kwargs[keyword] for keyword in POLICY_KEYWORDS if keyword in kwargs), None)
    if given is None or (given.kind is Kind.CONST and given.const is None):
        return model  # no policy (`mixed_precision=None`): the parameters compute and step as they are
    if given.op != POLICY or not isinstance(given.payload, tuple) or model.kind is not Kind.MODULE or model.op:
        return UNKNOWN
    compute, output = given.payload
    if compute is None and output is None:  # the policy changes no dtype
        return model
    path = ctx.scope.module.path
    op = f"fsdp: mixed precision at {path}:{id(node)}"
    self.sharded[op] = (compute, output, Origin("", "computed under FSDP's mixed precision", path, node))
    sharded = model.with_(op=op)
    if leaf == "fully_shard" and node.args and isinstance(node.args[0].value, (cst.Name, cst.Attribute)):
        # In place: torchtitan writes `fully_shard(model, mp_policy=mp)` as a statement of its own.
        self.assign(node.args[0].value, sharded, ctx)
    return sharded


def policy(self: Interpreter, leaf: str, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`MixedPrecision(param_dtype=torch.bfloat16, ...)`: its (compute, output) dtypes; unknown when a
    dtype it names is not known here."""
    dtypes: list[Compute] = []
    for index, keyword in enumerate(("param_dtype", "reduce_dtype", "output_dtype")):
        value = kwargs.get(keyword, args[index] if index < len(args) else None)
        if value is None or (value.kind is Kind.CONST and value.const is None):
            dtypes.append(None)
            continue
        precision = self.dtype_value(value)
        if precision is None or precision is Precision.UNKNOWN:
            return UNKNOWN
        dtypes.append(precision)
    compute = dtypes[0]
    # Only FSDP2's `output_dtype` casts the outputs; otherwise they are what the forward computes.
    output = dtypes[2] if leaf == "MixedPrecisionPolicy" else None
    return Value(Kind.INSTANCE, op=POLICY, payload=(compute, output))


def forward(
    self: Interpreter,
    module: Value,
    run: Callable[[Value], Value],
) -> Value | None:
    """A sharded model's output: its forward run with the parameters in the compute dtype, the
    result cast to the output dtype; None when `module` is no sharded model."""
    found = self.sharded.get(module.op or "")
    if found is None:
        return None
    compute, output, origin = found
    unsharded = module.with_(op=None)
    if compute is not None and compute is not module.precision:
        # Every layer computes in it: a forward of the linted code runs over its submodules so cast
        # (its own `logits.float()` still upcasts what it returns).
        cast = unsharded.with_(precision=compute, origin=origin if compute.is_low else None)
        unsharded = recast(unsharded, cast)
    result = run(unsharded)
    if output is None or result.kind not in (Kind.TENSOR, Kind.ANY) or result.precision is Precision.UNKNOWN:
        return result
    return result.with_(precision=output, origin=origin if output.is_low else None)
