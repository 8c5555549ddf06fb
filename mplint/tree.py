"""Fast walks over `ast` trees, in source order.

`ast.walk` is breadth-first and `ast.iter_child_nodes` re-reads every field each time; these walks
read only the fields that can hold nodes (never the shared `ctx`/operator singletons) and keep
source order, which the per-path rules rely on (a call's arguments before the call).
"""

from __future__ import annotations

import ast
from typing import Callable, Iterator, Optional, Union

# Fields that never hold a child worth visiting: context and operator singletons (one `ast.Load()`
# object for the whole process) and the identifiers, flags and numbers of a node.
_SKIPPED_FIELDS = frozenset(
    {"ctx", "op", "ops", "id", "attr", "name", "arg", "asname", "module", "level", "kind", "is_async", "conversion", "type_comment", "tag"}
)
# A Constant's `value` is the literal itself; a Name (the commonest node) has no children either.
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {ast.Constant: (), ast.MatchSingleton: (), ast.Name: ()}

Into = Optional[Callable[[ast.AST], bool]]
# A node with a position in its file (what findings, fixes and messages point at).
Located = Union[ast.expr, ast.stmt, ast.keyword]
# `try:` and, from Python 3.11, `try: ... except* ...:` (same fields).
TRY_STATEMENTS: tuple[type[ast.stmt], ...] = (ast.Try, *((ast.TryStar,) if hasattr(ast, "TryStar") else ()))


def children(node: ast.AST) -> list[ast.AST]:
    """The node's child nodes in source order."""
    kind = type(node)
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _CHILD_FIELDS[kind] = tuple(name for name in kind._fields if name not in _SKIPPED_FIELDS)
    if kind is ast.Dict:  # keys and values interleave in the source; a `**spread` has key None
        return [item for pair in zip(node.keys, node.values) for item in pair if item is not None]  # type: ignore[attr-defined]
    found: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if isinstance(value, ast.AST):
            found.append(value)
        elif isinstance(value, list):
            found.extend(item for item in value if isinstance(item, ast.AST))
    return found


def walk(node: ast.AST, into: Into = None) -> Iterator[ast.AST]:
    """Every node under `node` (itself first), parents before children; a node for which `into`
    returns False is yielded but not entered."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current is node or into is None or into(current):
            stack.extend(reversed(children(current)))


def walk_post(node: ast.AST, into: Into = None) -> Iterator[ast.AST]:
    """Every node under `node`, children before parents (a call's arguments before the call)."""
    stack: list[tuple[ast.AST, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            yield current
            continue
        stack.append((current, True))
        if current is node or into is None or into(current):
            stack.extend((child, False) for child in reversed(children(current)))


def dotted_text(node: ast.AST) -> str:
    """The dotted spelling of a Name/Attribute chain (`torch.cuda.amp`); "" for anything else."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))


def positional_args(call: ast.Call) -> list[ast.expr]:
    """The call's positional arguments, `*spread`s left out."""
    return [arg for arg in call.args if not isinstance(arg, ast.Starred)]


def keyword_arg(call: ast.Call, name: str) -> Optional[ast.expr]:
    """The expression passed as keyword `name`, if it was."""
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value
    return None


def argument(call: ast.Call, index: Optional[int], keyword: Optional[str] = None) -> Optional[ast.expr]:
    """The expression passed as positional `index` or as `keyword`, whichever was used."""
    if keyword is not None:
        found = keyword_arg(call, keyword)
        if found is not None:
            return found
    positional = positional_args(call)
    return positional[index] if index is not None and index < len(positional) else None
