from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api
from mplint.analysis.facts import CallFact
from mplint.analysis.frameworks import transformers
from mplint.analysis.values import Kind, Value
from mplint.rule import Rule
from mplint.tree import dotted_text

if TYPE_CHECKING:
    pass


class OptimizerOnHalfParams(Rule):
    """An optimizer updates half-precision parameters, with no fp32 master weights.

    ## What it does
    Finds an optimizer (`torch.optim.*`, bitsandbytes, apex `FusedAdam`, `transformers.AdamW`, ...)
    built over the parameters of a module made bfloat16/float16 (`model.half()`,
    `.to(torch.bfloat16)`, `from_pretrained(..., torch_dtype=torch.bfloat16)`,
    `torch.set_default_dtype(torch.bfloat16)` before the model is built), whether the
    parameters are passed as `model.parameters()`, a `named_parameters()` comprehension, a
    `filter(...)`, param-group dicts or lists built from them, or through helper functions. It
    also reports a module cast to half in place *after* its optimizer was built, then stepped,
    and a transformers/TRL `Trainer(model=...)` given a model loaded half: the Trainer builds its
    own optimizer over the model's trainable parameters as they are.

    Not reported: an fp32 model trained under autocast; an optimizer handed to
    `deepspeed.initialize` with fp16 or bf16 on (DeepSpeed steps fp32 masters); FSDP with `MixedPrecision` (shards stay
    fp32); optimizers that compensate (`optimi`'s Kahan summation, `kahan_sum=True`,
    `bf16_stochastic_round=True`); a Trainer whose arguments are not all known (`**config`, TRL's
    `--config` file) or turn DeepSpeed/FSDP on, or that an accelerate configuration may launch.

    ## Why is this bad
    The update `w - lr * step` is rounded to the parameter's precision. With bf16's 8-bit
    mantissa, any update smaller than ~1/256 of the weight is rounded away entirely: at a
    learning rate of 1e-5 most updates vanish and training stalls while the loss looks merely
    slow. The optimizer's state (`exp_avg`, `exp_avg_sq`) is half too and loses its own
    small increments.

    ## Example
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ```

    ## Fix
    Keep the parameters fp32 and run the forward pass under autocast:
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(**batch).loss
    ```
    Or keep an fp32 master copy the optimizer updates, copying it back into the bf16 model
    after each step; or use an optimizer with Kahan summation / stochastic rounding
    (`optimi.AdamW`, torchao's `bf16_stochastic_round=True`).
    """

    CODE = "MP003"
    NAME = "optimizer-on-half-params"
    MESSAGE = (
        "{optimizer} over {dtype} parameters ({origin}): no fp32 master weights, small updates round away; "
        "keep the parameters fp32 and use autocast"
    )
    LATE_MESSAGE = (
        "module cast to {dtype} in place after {optimizer} was built over its parameters ({path}:{line}) and "
        "stepped after: updates now round to {dtype} with no fp32 master weights"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    # A Trainer (transformers', TRL's, a subclass) builds its optimizer itself: `RLOOTrainer(model=policy)`.
    SINKS = frozenset({"optim", "Adam", "SGD", ".step(", "Trainer"})
    VALID = (
        """
import torch
model = torch.nn.Linear(8, 8)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(torch.randn(2, 8)).sum()
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(8, 8).half()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node, conditional=True):
            message = self._half_params_message(fact)
            if message is not None and not self.precision.has_master_weights(node):
                self.report(node, message, condition=fact.condition)
                break
        for late in self.precision.casts_after_optimizer(node):
            optimizer_line = self.line_of(late.optimizer, late.optimizer_path)
            optimizer = _optimizer_name(self.precision.calls(late.optimizer))
            self.report(
                node,
                self.LATE_MESSAGE.format(
                    dtype=late.precision.value, optimizer=optimizer, path=late.optimizer_path, line=optimizer_line
                ),
            )
            break

    def _half_params_message(self, fact: CallFact) -> str | None:
        # A project's own optimizer class (`MemoryEfficientAdamW(...)`) is named as the call spells it.
        name = fact.function or dotted_text(fact.node.func)
        own = transformers.own_optimizer_params(fact.result)
        if own is not None:  # `Trainer(model=bf16_model, args=...)` builds its optimizer over them
            optimizer = f"the optimizer {torch_api.last_part(name or 'Trainer')} builds"
            return self.MESSAGE.format(
                optimizer=optimizer, dtype=own.precision.value, origin=self.describe_origin(own.origin, fact.chain)
            )
        if fact.result.kind is not Kind.OPTIMIZER or not name:
            return None
        if name.startswith(torch_api.LOW_PRECISION_SAFE_OPTIMIZER_PREFIXES):
            return None
        if any(_is_true(fact.arg(None, flag)) for flag in torch_api.LOW_PRECISION_SAFE_OPTIMIZER_FLAGS):
            return None
        params = _params_built_over(fact)
        if params is None or params.kind is not Kind.PARAMS or not params.precision.is_low:
            return None
        return self.MESSAGE.format(
            optimizer=torch_api.last_part(name),
            dtype=params.precision.value,
            origin=self.describe_origin(params.origin, fact.chain),
        )


def _params_built_over(fact: CallFact) -> Value | None:
    """The parameters an optimizer a call returns updates: a factory's (from the model it was handed),
    or its first argument. A helper of the linted code is reported where it builds the optimizer,
    and where it is called only when handed the parameters (litgpt's
    `instantiate_torch_optimizer(optimizer, model.parameters())`): the caller chose them."""
    if fact.callee is None:
        return fact.result.item("params") or fact.arg(0, "params")
    handed = (*fact.args, *(value for _, value in fact.kwargs))
    return next((value for value in handed if value.kind is Kind.PARAMS), None)


def _optimizer_name(facts: Sequence[CallFact]) -> str:
    names = (fact.function or dotted_text(fact.node.func) for fact in facts)
    return next((torch_api.last_part(name) for name in names if name), "the optimizer")


def _is_true(value: object) -> bool:
    return getattr(value, "payload", None) is True
