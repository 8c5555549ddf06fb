"""Every registered rule's own VALID and INVALID examples behave as its docs say."""

from __future__ import annotations

import textwrap

from mplint.api import lint_source
from mplint.registry import all_rules

CORE_CODES = {"MP001", "MP002", "MP003"}


def _codes_reported(code: str, snippet: str) -> set[str]:
    findings = lint_source(textwrap.dedent(snippet), path="example.py", select=[code])
    return {finding.code for finding in findings}


def test_core_rules_are_registered() -> None:
    assert CORE_CODES <= {rule.CODE for rule in all_rules()}


def test_every_rule_has_examples_of_both_kinds() -> None:
    missing = [rule.CODE for rule in all_rules() if not (rule.VALID and rule.INVALID)]
    assert not missing, f"rules without VALID and INVALID examples: {missing}"


def test_valid_examples_are_quiet() -> None:
    failures = [
        f"{rule.CODE} VALID[{index}]:\n{textwrap.dedent(snippet)}"
        for rule in all_rules()
        for index, snippet in enumerate(rule.VALID)
        if rule.CODE in _codes_reported(rule.CODE, snippet)
    ]
    assert not failures, "reported on a VALID example:\n" + "\n".join(failures)


def test_invalid_examples_are_reported() -> None:
    failures = [
        f"{rule.CODE} INVALID[{index}]:\n{textwrap.dedent(snippet)}"
        for rule in all_rules()
        for index, snippet in enumerate(rule.INVALID)
        if rule.CODE not in _codes_reported(rule.CODE, snippet)
    ]
    assert not failures, "not reported on an INVALID example:\n" + "\n".join(failures)
