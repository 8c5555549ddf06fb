"""Reporters: one module per format, each a `render(findings) -> str` that computes nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from mplint.findings import Finding

# Adding a format is adding `mplint/report/<name>.py` and its name here.
FORMATS = ("text", "json", "sarif", "github")
# The formats whose module also renders counts per rule (`statistics(findings) -> str`).
STATISTICS_FORMATS = ("text", "json")


def renderer(format_name: str) -> Callable[[Sequence[Finding]], str]:
    return importlib.import_module(f"{__name__}.{format_name}").render


def statistics_renderer(format_name: str) -> Callable[[Sequence[Finding]], str]:
    return importlib.import_module(f"{__name__}.{format_name}").statistics
