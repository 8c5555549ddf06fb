"""Find every rule shipped in `mplint.rules` (one module per rule)."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from mplint.rule import Rule


@functools.cache
def all_rules() -> tuple[type[Rule], ...]:
    import mplint.rules as package

    found: list[type[Rule]] = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Rule) and value is not Rule:
                if value.__module__ == module.__name__:
                    found.append(value)
    return tuple(sorted(found, key=lambda rule: rule.CODE))


def rule_by_code(code: str) -> type[Rule] | None:
    for rule in all_rules():
        if rule.CODE == code.upper():
            return rule
    return None
