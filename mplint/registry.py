"""Find every rule shipped in `mplint.rules` (one module per rule, named after its code)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mplint.rule import Rule

# `mp001_uncast_log_softmax` holds MP001.
_RULE_MODULE = re.compile(r"(mp\d{3})_\w+")


@functools.cache
def all_rules() -> tuple[type[Rule], ...]:
    import mplint.rules as package
    from mplint.rule import Rule

    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value is not Rule:
                if value.__module__ == module.__name__:
                    found.append(value)
    return tuple(sorted(found, key=lambda rule: rule.CODE))


@functools.cache
def rule_codes() -> frozenset[str]:
    """The codes of `all_rules()`, read from the rule modules' names without importing them (rules
    import libcst): enough for a run whose findings are all cached."""
    import mplint.rules as package

    named = (_RULE_MODULE.fullmatch(info.name) for info in pkgutil.iter_modules(package.__path__))
    return frozenset(match.group(1).upper() for match in named if match)


def rule_by_code(code: str) -> type[Rule] | None:
    for rule in all_rules():
        if rule.CODE == code.upper():
            return rule
    return None
