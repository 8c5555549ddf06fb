from __future__ import annotations

from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis import torch_api
from mplint.analysis.facts import CallFact
from mplint.analysis.values import Kind, Precision, Region, Value
from mplint.findings import Severity
from mplint.rule import Rule
from mplint.tree import dotted_text, string_value

if TYPE_CHECKING:
    from mplint.run.engine import FileContext


class HardCodedBf16(Rule):
    """A CUDA training script hard-codes `torch.bfloat16`, with no check that the GPU supports it.

    ## What it does
    Finds `torch.bfloat16` written as the argument that picks the compute dtype (`torch.autocast("cuda",
    dtype=torch.bfloat16)`, `model.to(torch.bfloat16)`, `from_pretrained(...,
    torch_dtype=torch.bfloat16)`) in a training script meant for CUDA: an entry script (a
    `if __name__ == "__main__":` block, or training code at the top level) that moves work to
    CUDA (`.cuda()`, `device="cuda"`, `torch.device("cuda")`) and steps an optimizer, when nothing
    the script runs asks whether the GPU computes in bf16 (`torch.cuda.is_bf16_supported()`,
    `torch.cuda.get_device_capability()`, `get_device_properties(...).major`, transformers'
    `is_torch_bf16_gpu_available()`, accelerate's `is_bf16_available()`). Reported once per script,
    at the first place. A warning: the script is right on the GPU it was written for.

    Not reported: a dtype that comes from a parameter, an option or a config (`dtype=args.dtype`,
    `torch.bfloat16 if args.bf16 else torch.float32`); an autocast region whose `enabled=` is a
    switch; CPU autocast (bf16 is CPU autocast's default); scripts with no optimizer step
    (inference), no CUDA device, or no entry point (libraries); test files; tensors merely stored
    in bf16 (`torch.empty(..., dtype=torch.bfloat16)`); scripts that need an Ampere GPU anyway (a
    float8 dtype, FlashAttention 2/3 through `attn_implementation=`).

    ## Why is this bad
    bfloat16 is native from compute capability 8.0 (Ampere: A100, RTX 30xx) on. On a V100, a T4
    or an RTX 20xx `torch.cuda.is_bf16_supported(including_emulation=False)` is False: torch 2.13
    runs bf16 there without bf16 tensor cores, and where it cannot make a bf16 tensor at all,
    entering `torch.autocast("cuda", dtype=torch.bfloat16)` raises "Current CUDA Device does not
    support bfloat16. Please switch dtype to float16." (torch/amp/autocast_mode.py). The script
    that trains on the author's A100 fails or crawls on the GPUs many users have:
    karpathy/nanoGPT#277 (V100) and openvla/openvla#103 (Quadro RTX 8000) report exactly this.

    ## Example
    ```python
    model = GPT(config).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    for x, y in loader:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x.cuda(), y.cuda())
        loss.backward()
        optimizer.step()
    ```

    ## Fix
    Choose the dtype from the GPU, with float16 and a GradScaler as the fallback:
    ```python
    amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=(amp_dtype == torch.float16))
    with torch.autocast("cuda", dtype=amp_dtype):
        ...
    ```
    """

    CODE = "MP207"
    NAME = "hard-coded-bf16-without-capability-check"
    SEVERITY = Severity.WARNING
    MESSAGE = (
        "torch.bfloat16 hard-coded in a CUDA training script{others}, and nothing checks that the GPU supports "
        "it: GPUs before Ampere (V100, T4, RTX 20xx) have no bf16 tensor cores, and autocast raises where bf16 "
        "is unavailable; pick the dtype with torch.cuda.is_bf16_supported() (float16 with a GradScaler otherwise)"
    )
    TRIGGERS = frozenset({"bfloat16"})
    VALID = (
        """
import torch
dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
model = torch.nn.Linear(8, 8).cuda()
optimizer = torch.optim.AdamW(model.parameters())
with torch.autocast("cuda", dtype=dtype):
    loss = model(x).sum()
loss.backward()
optimizer.step()
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(8, 8).cuda()
optimizer = torch.optim.AdamW(model.parameters())
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(x).sum()
loss.backward()
optimizer.step()
""",
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self.hard_coded: list[cst.Call] = []
        self.uses_cuda = False
        self.steps = False
        self.steps_at_top_level = False
        self.entry = False
        self.needs_ampere = False

    def visit_Module(self, node: cst.Module) -> None:
        self.entry = any(_is_main_guard(statement) for statement in node.body)

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            if fact.path != self.context.path:
                continue
            self.uses_cuda = self.uses_cuda or _moves_to_cuda(fact)
            self.needs_ampere = self.needs_ampere or _needs_ampere(fact)
            if _steps_optimizer(fact):
                self.steps = True
                self.steps_at_top_level = self.steps_at_top_level or not fact.chain
            if _hard_codes_bf16(fact):
                self.hard_coded.append(node)

    def leave_Module(self, original_node: cst.Module) -> None:
        if not (self.hard_coded and self.uses_cuda and self.steps):
            return
        if (
            not (self.entry or self.steps_at_top_level)
            or self.precision.is_test(self.context.path)
            or self.needs_ampere
        ):
            return
        if self.precision.calls_any(torch_api.BF16_CAPABILITY_QUERIES):
            return
        places = list(dict.fromkeys(self.hard_coded))
        others = f" (and {len(places) - 1} more place{'s' if len(places) > 2 else ''})" if len(places) > 1 else ""
        self.report(places[0], self.MESSAGE.format(others=others))


def _hard_codes_bf16(fact: CallFact) -> bool:
    """`torch.bfloat16` written as an argument of a call that picks the compute dtype: an autocast
    region, a model built, loaded or cast, the default dtype (a tensor stored in bf16 computes nothing)."""
    region = fact.result.payload if fact.result.kind is Kind.AUTOCAST else None
    if isinstance(region, Region) and (region.device != "cuda" or region.enabled is not True):
        return False  # CPU autocast, or a region a switch turns off
    if region is None and fact.result.kind is not Kind.MODULE and fact.function != "torch.set_default_dtype":
        return False
    for arg in fact.node.args:
        if not arg.star and dotted_text(arg.value).rpartition(".")[2] == "bfloat16":
            value = _value_of(fact, arg)
            if value is not None and _is_bf16_dtype(value):
                return True
    return False


def _is_bf16_dtype(value: Value) -> bool:
    """`torch.bfloat16` as an attribute of torch (a dtype), or imported by name (`from torch import bfloat16`)."""
    if value.kind is Kind.DTYPE:
        return value.precision is Precision.BF16
    return torch_api.dtype_of_name(value.name or "") is Precision.BF16


def _value_of(fact: CallFact, arg: cst.Arg) -> Value | None:
    if arg.keyword is not None:
        return fact.arg(None, arg.keyword.value)
    positional = [each for each in fact.node.args if each.keyword is None and not each.star]
    return fact.arg(positional.index(arg))


def _moves_to_cuda(fact: CallFact) -> bool:
    """`.cuda()`, or a CUDA device string passed (`device="cuda"`, `.to("cuda:0")`, `torch.device("cuda")`)."""
    if fact.method == "cuda":
        return True
    values = (*fact.args, *(value for _, value in fact.kwargs))
    return any(isinstance(value.const, str) and value.const.split(":")[0] == "cuda" for value in values)


def _needs_ampere(fact: CallFact) -> bool:
    """A float8 dtype (`x.to(torch.float8_e4m3fn)`: compute capability 8.9) or FlashAttention 2/3
    (`attn_implementation="flash_attention_2"`: Ampere and newer) passed: the script needs a GPU that
    computes bf16 natively anyway, so a bf16 check would be moot."""
    values = (*fact.args, *(value for _, value in fact.kwargs))
    return any(
        (value.name or "").startswith("torch.float8_")
        or (isinstance(value.const, str) and value.const.startswith(("flash_attention_2", "flash_attention_3")))
        for value in values
    )


def _steps_optimizer(fact: CallFact) -> bool:
    """`optimizer.step()`, or `scaler.step(optimizer)`."""
    if fact.method != "step":
        return False
    first = fact.arg(0)
    return fact.receiver.kind is Kind.OPTIMIZER or (first is not None and first.kind is Kind.OPTIMIZER)


def _is_main_guard(statement: cst.CSTNode) -> bool:
    """`if __name__ == "__main__":`."""
    if not isinstance(statement, cst.If) or not isinstance(statement.test, cst.Comparison):
        return False
    test = statement.test
    sides = [test.left, *(target.comparator for target in test.comparisons)]
    return any(isinstance(side, cst.Name) and side.value == "__name__" for side in sides) and any(
        string_value(side) == "__main__" for side in sides
    )
