from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api
from mplint.analysis.facts import CallFact
from mplint.analysis.frameworks import peft
from mplint.analysis.values import Kind, Precision, Value, is_mixed
from mplint.rule import Rule

if TYPE_CHECKING:
    from mplint.run.engine import FileContext

# Trainer/accelerator settings that turn on float16 AMP with a GradScaler: keyword -> values.
FP16_AMP_SETTINGS = {
    "precision": frozenset({16, "16", "16-mixed"}),  # Lightning Trainer / Fabric
    "mixed_precision": frozenset({"fp16"}),  # accelerate Accelerator
    "fp16": frozenset({True}),  # transformers TrainingArguments
}
# Calls that hand a model to a framework that will train it: callee leaf -> keyword of the model.
MODEL_HANDOFFS = {"Trainer": "model", "fit": "model", "prepare": None, "setup": None}


class HalfParamsWithScaler(Rule):
    """Float16 AMP (a GradScaler) over trainable parameters that are themselves float16.

    ## What it does
    Finds loss scaling for float16 (`torch.amp.GradScaler(...)` or `torch.cuda.amp.GradScaler()`
    not disabled, Lightning `Trainer(precision=16)` / `"16-mixed"`, Hugging Face
    `TrainingArguments(fp16=True)`, accelerate `Accelerator(mixed_precision="fp16")`) in a file
    where the trainable parameters were made float16: an optimizer built over the parameters of
    a module cast with `.half()` / `.to(torch.float16)` / loaded with `torch_dtype=torch.float16`,
    or such a module handed to a trainer (`Trainer(model=...)`, `trainer.fit(model)`,
    `accelerator.prepare(model, ...)`). Reported at the scaler construction or trainer setting.
    Models wrapped for adapters (PEFT's `get_peft_model`, whose LoRA weights are fp32) are unknown
    to the precision model and are not reported.

    ## Why is this bad
    `GradScaler.unscale_` (called by `scaler.step`) refuses float16 gradients:
    `ValueError: Attempting to unscale FP16 gradients.` AMP is meant to keep fp32 master weights and
    run only the forward pass in fp16; with fp16 weights the optimizer update itself rounds away
    (fp16 has a 10-bit mantissa) and there is nothing to unscale into. This is the error behind many
    Hugging Face and Lightning reports of fine-tuning a model loaded in fp16 with `fp16=True`.

    ## Example
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float16)
    args = TrainingArguments(output_dir="out", fp16=True)
    Trainer(model=model, args=args, train_dataset=ds).train()
    ```

    ## Fix
    ```python
    model = AutoModelForCausalLM.from_pretrained(name, torch_dtype=torch.float32)
    args = TrainingArguments(output_dir="out", fp16=True)  # autocast fp16 over fp32 weights
    ```
    Or train fp32 adapters (LoRA) on the frozen fp16 model, or use bfloat16 without a scaler.
    """

    CODE = "MP107"
    NAME = "half-params-with-scaler"
    MESSAGE = (
        '{setup} over float16 trainable parameters ({origin}): `scaler.step` raises "Attempting to unscale '
        'FP16 gradients"; keep the parameters float32 and let autocast run the forward pass in float16'
    )
    TRIGGERS = frozenset({"Scaler", "fp16", "precision=16", "16-mixed", "mixed_precision"})
    NEEDS_HALF_STEPS = True
    VALID = (
        """
import torch
model = torch.nn.Linear(8, 8).cuda()
optimizer = torch.optim.AdamW(model.parameters())
scaler = torch.amp.GradScaler("cuda")
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(8, 8).cuda().half()
optimizer = torch.optim.AdamW(model.parameters())
scaler = torch.amp.GradScaler("cuda")
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.setups: dict[cst.Call, str] = {}
        self.half: Value | None = None

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            if fact.path != self.context.path:
                continue
            setup = _fp16_loss_scaling(fact)
            if setup is not None:
                self.setups.setdefault(node, setup)
            # The first one is the origin the message names. An optimizer whose parameters are
            # made fp32 before it steps (or that a framework gives fp32 masters) steps no fp16 ones.
            if self.half is None and not self.precision.has_master_weights(node, fact.condition):
                self.half = _trained_half(fact)

    def leave_Module(self, original_node: cst.Module) -> None:
        if self.half is None:
            return
        origin = self.describe_origin(self.half.origin)
        for node, setup in self.setups.items():
            self.report(node, self.MESSAGE.format(setup=setup, origin=origin))


def _fp16_loss_scaling(fact: CallFact) -> str | None:
    """How a call turns on float16 loss scaling, if it does."""
    if fact.function is None:
        return None
    leaf = torch_api.last_part(fact.function)
    if fact.function in torch_api.GRAD_SCALERS:
        enabled = fact.arg(None, "enabled")
        return None if enabled is not None and enabled.const is False else f"`{leaf}`"
    for keyword, values in FP16_AMP_SETTINGS.items():
        setting = fact.arg(None, keyword)
        if setting is not None and setting.const in values:  # `fp16=1` is `fp16=True` to TrainingArguments
            return f"`{leaf}({keyword}={setting.const!r})`"
    return None


def _trained_half(fact: CallFact) -> Value | None:
    """float16 parameters an optimizer updates, or a float16 model handed to a trainer."""
    if fact.result.kind is Kind.OPTIMIZER:
        params = fact.arg(0, "params")
        return (
            params if params is not None and params.kind is Kind.PARAMS and params.precision is Precision.FP16 else None
        )
    op = fact.op or ""
    if op not in MODEL_HANDOFFS and not op.endswith("Trainer"):  # TRL's `SFTTrainer`, `DPOTrainer`, ...
        return None
    keyword = MODEL_HANDOFFS.get(op, "model")
    candidates = [fact.arg(None, keyword), *fact.args]  # (`prepare(...)` names no keyword: None)
    return next(
        (
            value
            for value in candidates
            if value is not None
            and value.kind is Kind.MODULE
            and value.precision is Precision.FP16
            and value.op != peft.FP32_ADAPTERS  # PEFT's trainable parameters: fp32 adapters
            and not is_mixed(value)  # half in part (`cast_training_params(model, dtype=torch.float32)`)
        ),
        None,
    )
