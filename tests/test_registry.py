"""The rule registry: the codes a cached run knows without importing a rule are the rules' own."""

from __future__ import annotations

from mplint.registry import all_rules, rule_codes


def test_the_codes_read_from_module_names_are_the_rules_codes() -> None:
    assert rule_codes() == {rule.CODE for rule in all_rules()}
