"""float16's range, and the numeric constants of the linted code that fall outside it.

Data and arithmetic only (no torch import): rules compare the constants the precision model
traced (`eps=1e-8`, `masked_fill(mask, -1e9)`) with what a float16 tensor can hold.
"""

from __future__ import annotations

import math
import struct

from mplint.analysis.values import Kind, Precision, Value

FP16_MAX = 65504.0
FP16_SMALLEST_SUBNORMAL = 2.0**-24  # 5.96e-08: anything smaller rounds to 0 or to this


def as_fp16(number: float) -> float:
    """`number` rounded to the nearest float16 (IEEE binary16), for messages: 1e-08 -> 0.0."""
    try:
        return float(struct.unpack("<e", struct.pack("<e", number))[0])
    except OverflowError:  # past 65504 (the rules round only constants that underflow today)
        return math.copysign(math.inf, number)


def underflows_fp16(number: float) -> bool:
    """A non-zero magnitude below float16's smallest subnormal: stored in fp16 it is 0 (or 5.96e-08)."""
    return 0 < abs(number) < FP16_SMALLEST_SUBNORMAL


def overflows_fp16(number: float) -> bool:
    """A finite magnitude beyond float16's largest value (65504): stored in fp16 it is inf."""
    return FP16_MAX < abs(number) < float("inf")


def numbers(value: Value) -> tuple[float, ...]:
    """The numeric constant(s) a value may be: one literal, or each choice of a joined one
    (`1e-8 if fp32 else 1e-4`); empty when any choice is not a number (precision first)."""
    if value.kind is not Kind.CONST:
        return ()
    choices = value.payload if isinstance(value.payload, frozenset) else (value.payload,)
    found = [choice for choice in choices if isinstance(choice, (int, float)) and not isinstance(choice, bool)]
    if len(found) < len(choices):  # no choice at all finds none and returns () too
        return ()
    return tuple(float(choice) for choice in found)


def may_be_fp16(precision: Precision) -> bool:
    """float16, or a low precision that is float16 on some runs (`torch.float16 if fp16 else torch.bfloat16`)."""
    return precision in (Precision.FP16, Precision.HALF)
