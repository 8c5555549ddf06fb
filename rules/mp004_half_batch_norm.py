from __future__ import annotations

import libcst as cst

from mplint.analysis import limits, torch_api
from mplint.analysis.facts import CallFact
from mplint.analysis.values import Kind, Value, is_mixed
from mplint.rule import Rule
from mplint.tree import dotted_text


class HalfBatchNorm(Rule):
    """A float16 model that holds BatchNorm layers is trained: its running statistics are float16.

    ## What it does
    Finds an optimizer built over the parameters of a module made float16 as a whole
    (`model.half()`, `.to(torch.float16)`, `torch.set_default_dtype(torch.float16)` before it is
    built) whose tree holds `nn.BatchNorm1d/2d/3d` or `nn.SyncBatchNorm`: a class of the linted code
    whose `__init__` builds them (directly, in `nn.Sequential(...)`, or through helpers and block
    classes such as a ResNet's `_make_layer`), or a torchvision builder whose networks hold them
    (`torchvision.models.resnet50()`, `vgg16_bn`, `mobilenet_v2`, `efficientnet_b0`, ...). Also a
    model cast to float16 in place after its optimizer was built, then stepped.

    Not reported: BatchNorm put back to fp32 after the cast (`for m in model.modules(): if
    isinstance(m, nn.BatchNorm2d): m.float()`, which leaves the model mixed); bfloat16 models
    (bf16 has fp32's range); fp32 models trained under autocast (BatchNorm's parameters and buffers
    stay fp32 there); `track_running_stats=False`; models whose construction is not visible.

    ## Why is this bad
    `.half()` casts BatchNorm's `running_mean` and `running_var` buffers too. torch computes the
    batch statistics in fp32 but stores the running estimates in float16: a channel whose batch
    variance exceeds 65504 (activations with a standard deviation above 256, common before the
    first BatchNorm of an unnormalised input or after a bad step) makes `running_var` inf, and in
    eval mode every output of that channel is 0 (on torch 2.13, CPU: a half `BatchNorm1d` fed
    values of std 400 ends with `running_var = inf` and all-zero eval outputs; the same layer kept
    fp32 and fed the same float16 input is finite). The estimates' small momentum updates also
    round away in float16. NVIDIA's apex replaced `network_to_half` with `FP16Model` for this
    reason ("converts BatchNorm moment tensors to half-precision ... occasionally results in NaNs",
    NVIDIA/apex#144); pytorch/pytorch#96798 reports the NaN running statistics.

    ## Example
    ```python
    model = torchvision.models.resnet50().cuda().half()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ```

    ## Fix
    Train the fp32 model under autocast with a `GradScaler` (BatchNorm then stays fp32). To keep a
    pure float16 model, put BatchNorm back to fp32 after the cast; a float16 input is accepted by an
    fp32 BatchNorm (cuDNN and the CPU kernel take mixed inputs):
    ```python
    model = torchvision.models.resnet50().cuda().half()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.float()
    ```
    """

    CODE = "MP004"
    NAME = "half-batch-norm"
    MESSAGE = (
        "{optimizer} trains a float16 model ({origin}) that holds {layer} ({where}): its running_mean/running_var "
        "are float16 buffers, a channel variance above 65504 stores inf and eval outputs collapse to 0; "
        "keep BatchNorm fp32 after the cast (m.float() for each _BatchNorm) or train fp32 under autocast"
    )
    LATE_MESSAGE = (
        "model cast to float16 in place after {optimizer} was built over it ({path}:{line}) and stepped after; "
        "it holds {layer} ({where}), whose running statistics become float16 buffers (inf above 65504); "
        "keep BatchNorm fp32 after the cast"
    )
    TRIGGERS = torch_api.LOW_PRECISION_WORDS
    SINKS = frozenset({"optim", "Adam", "SGD", ".step("})
    VALID = (
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU()).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
with torch.autocast("cuda", dtype=torch.float16):
    loss = model(images).mean()
""",
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU()).cuda().half()
for m in model.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.float()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
""",
    )
    INVALID = (
        """
import torch
import torch.nn as nn
model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU()).cuda().half()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node, conditional=True):
            message = self._message(fact)
            if message is not None:
                self.report(node, message, condition=fact.condition)
                break
        for late in self.precision.late_casts_at(node):
            if not limits.may_be_fp16(late.precision):
                continue
            layer = next((self._layer(fact.receiver) for fact in self.precision.calls(node)), None)
            if layer is None:
                continue
            optimizer = next((_optimizer_name(fact) for fact in self.precision.calls(late.optimizer)), "the optimizer")
            line = self.line_of(late.optimizer, late.optimizer_path)
            self.report(
                node,
                self.LATE_MESSAGE.format(
                    optimizer=optimizer,
                    path=late.optimizer_path,
                    line=line,
                    layer=layer[0],
                    where=layer[1],
                ),
                condition=late.condition,
            )
            break

    def _message(self, fact: CallFact) -> str | None:
        if fact.result.kind is not Kind.OPTIMIZER:
            return None
        params = fact.arg(0, "params")
        if params is None or params.kind is not Kind.PARAMS:
            return None  # parameters it cannot see (`SGD(**optimizer_kwargs)`)
        if not limits.may_be_fp16(params.precision):
            return None
        layer = self._layer(params)
        if layer is None:
            return None
        return self.MESSAGE.format(
            optimizer=_optimizer_name(fact),
            origin=self.describe_origin(params.origin, fact.chain),
            layer=layer[0],
            where=layer[1],
        )

    def _layer(self, module: Value) -> tuple[str, str] | None:
        """The first BatchNorm layer (its name, and where it is built) of `module`'s tree that
        keeps running statistics."""
        if is_mixed(module):
            return None  # a model half only in part: BatchNorm put back to fp32, or only a head cast
        for layer in self.precision.batch_norms(module):
            tracked = layer.arg(None, "track_running_stats")
            if tracked is not None and tracked.const is False:
                continue
            name = torch_api.last_part(layer.function or "")
            line = self.line_of(layer.node, layer.path)
            return (f"{name}()" if name in torch_api.BATCH_NORM_CLASSES else f"{name}()'s BatchNorm2d layers"), (
                f"built at {layer.path}:{line}"
            )
        return None


def _optimizer_name(fact: CallFact) -> str:
    """The optimizer's class as the messages name it: torch's name through an alias (`Opt` is
    `AdamW`), a class of the linted code as written (`Lion`), else "the optimizer"."""
    return torch_api.last_part(fact.function or dotted_text(fact.node.func)) or "the optimizer"
