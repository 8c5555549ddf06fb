"""Test-only rules with autofixes, registered for one test at a time (never shipped in rules/),
so the fix machinery is exercised whatever fixes the real rules offer.

`.half()` becomes `.to(torch.float16)` (safe), `.bfloat16()` becomes `.float()` (unsafe: memory
doubles), and a deliberately broken rule replaces `.half()` with text that does not parse.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import libcst as cst
import pytest

from mplint import api, registry
from mplint.findings import Applicability
from mplint.rule import Autofix, Replacement, Rule


def is_method_call(node: cst.Call, name: str) -> bool:
    return isinstance(node.func, cst.Attribute) and node.func.attr.value == name and not node.args


class HalfCall(Rule):
    """`.half()` spelled as `.to(torch.float16)` (a test rule with a safe fix)."""

    CODE = "MP990"
    NAME = "test-half-call"
    FIX = Applicability.SAFE
    TRIGGERS = frozenset({"half"})

    def visit_Call(self, node: cst.Call) -> None:
        if is_method_call(node, "half"):
            assert isinstance(node.func, cst.Attribute)
            name_start = self.context.parsed.offsets(node.func.attr)[0]
            call_end = self.context.parsed.offsets(node)[1]
            fix = Autofix("use .to(torch.float16)", (Replacement(name_start, call_end, "to(torch.float16)"),))
            self.report(node, "spell .half() as .to(torch.float16)", fix=fix)


class BFloat16Call(Rule):
    """`.bfloat16()` replaced by `.float()` (a test rule with an unsafe fix)."""

    CODE = "MP991"
    NAME = "test-bfloat16-call"
    FIX = Applicability.UNSAFE
    TRIGGERS = frozenset({"bfloat16"})

    def visit_Call(self, node: cst.Call) -> None:
        if is_method_call(node, "bfloat16"):
            assert isinstance(node.func, cst.Attribute)
            fix = Autofix("use .float()", (self.replace(node.func.attr, "float"),), Applicability.UNSAFE)
            self.report(node, "keep this in fp32", fix=fix)


class BrokenFix(Rule):
    """A rule bug: its fix leaves an unclosed parenthesis."""

    CODE = "MP992"
    NAME = "test-broken-fix"
    FIX = Applicability.SAFE
    TRIGGERS = frozenset({"half"})

    def visit_Call(self, node: cst.Call) -> None:
        if is_method_call(node, "half"):
            self.report(node, "broken", fix=Autofix("break it", (self.replace(node, "half(("),)))


EXAMPLE_RULES: tuple[type[Rule], ...] = (HalfCall, BFloat16Call)


def _with(rules: Iterable[type[Rule]]) -> tuple[type[Rule], ...]:
    return tuple(sorted({*registry.all_rules(), *rules}, key=lambda rule: rule.CODE))


def register(monkeypatch: pytest.MonkeyPatch, *rules: type[Rule]) -> None:
    """Make the API see `rules` as shipped ones for the current test."""
    every = _with(rules)
    monkeypatch.setattr(api, "all_rules", lambda: every)
    monkeypatch.setattr(api, "rule_codes", lambda: frozenset(rule.CODE for rule in every))


def main() -> None:
    """`mplint` with the example rules registered: what the concurrency test runs in processes."""
    from mplint.cli import main as mplint_main

    every = _with(EXAMPLE_RULES)
    api.all_rules = lambda: every  # type: ignore[assignment]
    api.rule_codes = lambda: frozenset(rule.CODE for rule in every)  # type: ignore[assignment]
    mplint_main(sys.argv[1:], prog_name="mplint")


if __name__ == "__main__":
    main()
