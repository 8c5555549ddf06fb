from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from mplint.analysis import torch_api
from mplint.analysis.facts import CallFact
from mplint.rule import Rule
from mplint.tree import argument, dotted_text


class AutocastDeviceFromStr(Rule):
    """An autocast `device_type` built from a device string (`str(device)`, `"cuda:0"`).

    ## What it does
    Finds the device argument of `torch.autocast(...)` / `torch.amp.autocast(...)` when it is
    `str(device)`, an f-string that formats a device or an index (`f"cuda:{rank}"`), a tensor's
    `x.type()` (`"torch.cuda.FloatTensor"`), or a string (literal or held in a variable) that
    carries a device index (`"cuda:0"`). Reported at the argument. `device.type`,
    `x.device.type` and plain `"cuda"` / `"cpu"` are fine.

    ## Why is this bad
    `device_type` is a device *type*, not a device. `str(torch.device("cuda", local_rank))` is
    `"cuda:0"`, and an index there is not what autocast expects: older torch releases raise
    `RuntimeError: User specified an unsupported autocast device_type 'cuda:0'`; recent ones
    accept the string but compare it literally with `"cuda"`, so the CUDA-specific handling is
    skipped (autocast is not disabled with a warning when CUDA is unavailable, bf16 support is not
    checked). `x.type()` names a tensor type and raises `Invalid device string`. The code usually
    works in a single-GPU test (`str(torch.device("cuda"))` is `"cuda"`) and breaks under `torchrun`
    where the device gains its rank index.

    ## Example
    ```python
    device = torch.device(f"cuda:{local_rank}")
    with torch.autocast(device_type=str(device), dtype=torch.bfloat16):
        loss = model(batch).loss
    ```

    ## Fix
    Pass the device's type: `torch.autocast(device_type=device.type, dtype=torch.bfloat16)`
    (for a tensor, `x.device.type`; for a string, `torch.device(name).type`).
    """

    CODE = "MP202"
    NAME = "autocast-device-from-str"
    MESSAGE = "autocast's device_type gets {what}; it takes a device type without an index: pass `device.type`"
    TRIGGERS = frozenset({"autocast"})
    VALID = (
        """
import torch
device = torch.device(f"cuda:{local_rank}")
with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
    loss = model(x).mean()
""",
    )
    INVALID = (
        """
import torch
device = torch.device(f"cuda:{local_rank}")
with torch.autocast(device_type=str(device), dtype=torch.bfloat16):
    loss = model(x).mean()
""",
    )

    def visit_Call(self, node: cst.Call) -> None:
        for fact in self.precision.calls(node):
            if (
                fact.function not in torch_api.AUTOCAST_ENTRY_POINTS
                or torch_api.AUTOCAST_ENTRY_POINTS[fact.function][0]
            ):
                continue  # not an autocast, or one with a fixed device (torch.cuda.amp.autocast)
            given = argument(node, 0, "device_type")
            if given is None:
                return
            what = _misuse(given, fact)
            if what is not None:
                self.report(given, self.MESSAGE.format(what=what))
            return


def _misuse(given: cst.BaseExpression, fact: CallFact) -> str | None:
    """What is wrong with the expression given as the device type, or None when it is a device type."""
    if isinstance(given, cst.Call) and dotted_text(given.func) == "str":
        return '`str(...)` of a device ("cuda:0" once the device has an index)'
    # `x.type()`: with an argument it returns a tensor, which autocast refuses before anything runs.
    if isinstance(given, cst.Call) and isinstance(given.func, cst.Attribute) and given.func.attr.value == "type":
        return 'a tensor type name (`x.type()` is "torch.cuda.FloatTensor")'
    parts = list(_string_parts(given))
    if any(isinstance(part, cst.FormattedString) for part in parts) and not _formats_device_types(parts):
        return "an f-string that formats a device or an index"
    value = fact.arg(0, "device_type")
    text = value.const if value is not None else None
    if isinstance(text, str) and ":" in text:
        return f"{text!r}, a device with an index"
    return None


def _string_parts(node: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """The literals an implicit concatenation (`"cuda:" f"{rank}"`) is made of, or `node` itself."""
    if isinstance(node, cst.ConcatenatedString):
        yield from _string_parts(node.left)
        yield from _string_parts(node.right)
    else:
        yield node


def _formats_device_types(parts: list[cst.BaseExpression]) -> bool:
    """`f"{device.type}"`: every placeholder is a `.type` and no literal part adds an index."""
    for part in parts:
        if isinstance(part, cst.SimpleString) and ":" in str(part.evaluated_value):
            return False
        for piece in part.parts if isinstance(part, cst.FormattedString) else ():
            if isinstance(piece, cst.FormattedStringText) and ":" in piece.value:
                return False
            if isinstance(piece, cst.FormattedStringExpression):
                expression = piece.expression
                if not (isinstance(expression, cst.Attribute) and expression.attr.value == "type"):
                    return False
    return True
