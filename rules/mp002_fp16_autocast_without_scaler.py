from __future__ import annotations

import libcst as cst

from mplint import tree
from mplint.analysis.facts import CallFact
from mplint.analysis.frameworks import accelerate, lightning
from mplint.analysis.values import Kind, Precision, Region, Value
from mplint.findings import Severity
from mplint.rule import Rule


class Fp16AutocastWithoutScaler(Rule):
    """An fp16 autocast region feeds `.backward()` with no loss scaling.

    ## What it does
    Finds float16 autocast regions (`torch.autocast("cuda")` without a dtype,
    `torch.cuda.amp.autocast()`, or any autocast with `dtype=torch.float16`) whose results reach
    `loss.backward()` or `torch.autograd.backward(loss)` unscaled, in a file that builds no loss
    scaler. Scaling counts in every form: a `GradScaler` (either API, any `enabled=`), `accelerate`
    with `mixed_precision="fp16"`, DeepSpeed, Lightning `precision="16-mixed"`, apex
    `amp.scale_loss`, timm's `NativeScaler`. bfloat16 regions and inference-only regions are fine.
    Where the file does scale, a plain backward is still reported when it runs on every path of the
    code that reaches it (no `if`/`else` or `except` around it, nor around a call on the way) and its
    loss is never a scaler's output: a second model's loss beside a scaled first one (sheeprl's
    ensembles). A plain backward in a branch is taken for the unscaled alternative of a scaled one.

    ## Why is this bad
    float16's smallest normal number is 6.1e-5 (subnormals reach 6e-8). Gradients of a
    typical network are far smaller than the loss: in fp16 many underflow to zero, so those
    weights silently stop learning. A `GradScaler` multiplies the loss (by 65536 at first) before
    `backward()` and divides the gradients back in fp32 before the optimizer step.

    ## Example
    ```python
    for x, y in loader:
        with torch.autocast("cuda"):  # float16
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
    ```

    ## Fix
    ```python
    scaler = torch.amp.GradScaler("cuda")
    for x, y in loader:
        with torch.autocast("cuda", dtype=torch.float16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    ```
    Or use `dtype=torch.bfloat16` where the GPU supports it: bf16 has fp32's range and needs no scaler.
    """

    CODE = "MP002"
    NAME = "fp16-autocast-without-scaler"
    MESSAGE = (
        "float16 autocast region reaches `{backward}` at {path}:{line} with no loss scaling; "
        "small gradients underflow to zero in fp16: use torch.amp.GradScaler (or dtype=torch.bfloat16)"
    )
    CONDITION = "float16 only when `{condition}` is false: not in the default configuration"
    SCALER_OFF = (
        "the GradScaler at {path}:{line} is on only while `{condition}` holds, and the region stays "
        "float16 when it does not: not in the default configuration"
    )
    TRIGGERS = frozenset({"autocast"})
    SINKS = frozenset({".backward("})
    VALID = (
        """
import torch
scaler = torch.amp.GradScaler("cuda")
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(x).mean()
scaler.scale(loss).backward()
""",
        """
import torch
with torch.autocast("cuda", dtype=torch.bfloat16):
    loss = model(x).mean()
loss.backward()
""",
    )
    INVALID = (
        """
import torch
model = torch.nn.Linear(4, 4)
with torch.autocast("cuda"):
    loss = model(torch.randn(2, 4)).mean()
loss.backward()
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node, conditional=True):
            loss = _backward_root(fact)
            if loss is not None and loss.scaled and loss.region is not None:
                self._check_scaler_condition(node, fact, loss.region)
            if loss is None or loss.scaled or loss.region is None:
                continue
            region = loss.region
            if region.enabled is False or self._worded_by_default(node, fact):
                continue
            # fp16 only in a non-default configuration (`--dtype float16`): a warning naming the
            # condition that holds by default. Not from a run under another launch: its tests were
            # decided by that launch's values, and the default run words this region's own.
            condition = None
            if region.precision is not Precision.FP16:
                if region.otherwise is None or region.otherwise[0] is not Precision.FP16:
                    continue
                if self.precision.under_another_launch(fact):
                    continue
                condition = region.otherwise[1]
            scaling = self.precision.scales_loss
            if scaling(region.path, fact.condition) or scaling(fact.path, fact.condition):
                if not self._plain_on_every_path(node, fact):
                    continue
            shown = "torch.autograd.backward(...)" if fact.function else ".backward()"
            message = self.MESSAGE.format(backward=shown, path=fact.path, line=self.line_of(node))
            if condition is not None:
                condition = self.CONDITION.format(condition=condition)
                self.report(region.node, f"{message} ({condition})", path=region.path, severity=Severity.WARNING)
            else:
                self.report(region.node, message, path=region.path, condition=fact.condition)

    def _plain_on_every_path(self, node: cst.Call, fact: CallFact) -> bool:
        """Whether the backward `node` runs wherever the code that reaches it does: not inside a
        branch or handler of its function, nor is any call on the way there (all known, in files
        this unit holds), and its loss is no name a scaler's output is assigned to."""
        if fact.function != "torch.autograd.backward" and (fact.method != "backward" or node.args):
            return False  # `accelerator.backward(loss)`: the framework's, which may scale
        files = self.context.files
        sites = [(self.context.path, node), *fact.call_sites]
        for site in sites:
            if site is None or site[0] not in files:
                return False
            if tree.under_condition(site[1], files[site[0]].pieces) is not False:
                return False
        loss = node.func.value if isinstance(node.func, cst.Attribute) else None
        return not (isinstance(loss, cst.Name) and _assigned_a_scaled_loss(self.context.parsed.pieces, loss.value))

    def _worded_by_default(self, node: cst.Call, fact: CallFact) -> bool:
        """Whether a backward seen in a run under another configuration (`--mixed-precision fp16`)
        is one the default run already reports, as reached through a region float16 only on the
        branch that configuration takes (`{"fp16": autocast(...), ...}[args.mixed_precision]`)."""
        if fact.condition is None or not self.precision.under_another_launch(fact):
            return False
        for default in self.precision.calls(node):
            loss = _backward_root(default)
            region = loss.region if loss is not None else None
            if region is not None and region.otherwise is not None and region.otherwise[0] is Precision.FP16:
                return True
        return False

    def _check_scaler_condition(self, node: cst.Call, fact: CallFact, region: Region) -> None:
        """`scaler.scale(loss).backward()` under a region float16 whatever the configuration, with a
        scaler that a configuration test turns off (baby-llama2-chinese: `torch.cuda.amp.autocast()`
        beside `GradScaler(enabled=(dtype == "float16"))`): with another `dtype`, unscaled fp16."""
        construction = _scaler_of(self, node)
        if construction is None or not self.precision.fixed_fp16(region):
            return
        condition = self.precision.scaler_condition(construction)
        if condition is None:
            return
        built = self.precision.calls(construction)
        if not built:
            return
        message = self.MESSAGE.format(backward=".backward()", path=fact.path, line=self.line_of(node))
        line = self.line_of(construction, path=built[0].path)
        off = self.SCALER_OFF.format(condition=condition, path=built[0].path, line=line)
        self.report(region.node, f"{message} ({off})", path=region.path, severity=Severity.WARNING)


def _assigned_a_scaled_loss(pieces: list[tuple[int, cst.Module]], name: str) -> bool:
    """Whether the file assigns `name` from a scaler (`loss = scaler.scale(loss)`, `amp.scale_loss`,
    a `loss_scaler(...)`): the backward on it may be a scaled one on some path."""
    for _, piece in pieces:
        for node in tree.walk(piece):
            if not isinstance(node, cst.Assign) or not any(
                isinstance(target.target, cst.Name) and target.target.value == name for target in node.targets
            ):
                continue
            calls = (inner for inner in tree.walk(node.value) if isinstance(inner, cst.Call))
            if any("scal" in tree.dotted_text(call.func).lower() for call in calls):
                return True
    return False


def _scaler_of(rule: Rule, node: cst.Call) -> cst.Call | None:
    """The construction of the GradScaler whose `scale(loss)` a backward runs on, written as one
    chain (`scaler.scale(loss).backward()`)."""
    func = node.func
    scaled = func.value if isinstance(func, cst.Attribute) else None
    if not isinstance(scaled, cst.Call):
        return None
    for fact in rule.precision.calls(scaled):
        scaler = fact.receiver
        if fact.method == "scale" and scaler.kind is Kind.SCALER and isinstance(scaler.identity, cst.Call):
            return scaler.identity
    return None


# Objects whose `backward(loss)` runs the backward pass (scaling it only when their settings say so).
FRAMEWORK_BACKWARDS = frozenset({accelerate.ACCELERATOR, lightning.FABRIC})


def _backward_root(fact: CallFact) -> Value | None:
    """The tensor a backward pass starts from: `loss.backward()`, `torch.autograd.backward(loss)`."""
    if fact.method == "backward" and fact.receiver.kind in (Kind.TENSOR, Kind.ANY):
        return fact.receiver
    if fact.function == "torch.autograd.backward":
        return fact.arg(0, "tensors")
    if fact.method == "backward" and fact.receiver.op in FRAMEWORK_BACKWARDS:
        loss = fact.arg(0, "loss")  # `accelerator.backward(loss)`, `fabric.backward(loss)`
        return loss.with_(scaled=True) if loss is not None and accelerate.scales_losses(fact.receiver) else loss
    return None
