"""Fast walks over libcst trees.

libcst's own `visit` rebuilds every node it passes (it is a transformer walk), which costs about
twice a plain walk over the nodes' dataclass fields. These walks skip the fields that only hold
whitespace and punctuation, which no rule needs.
"""

from __future__ import annotations

from typing import Callable, Iterator, Optional

import libcst as cst

_PUNCTUATION_FIELDS = frozenset(
    {
        "lpar", "rpar", "comma", "semicolon", "leading_lines", "header", "footer", "newline",
        "lines_after_decorators", "dot", "colon", "equal", "star", "lbracket", "rbracket", "lbrace",
        "rbrace", "whitespace_before_colon",
    }
)
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}

Into = Optional[Callable[[cst.CSTNode], bool]]


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The node's syntactic children in source order (no whitespace or punctuation nodes)."""
    kind = type(node)
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _CHILD_FIELDS[kind] = tuple(
            name for name in node.__dataclass_fields__ if name not in _PUNCTUATION_FIELDS and "whitespace" not in name
        )
    found: list[cst.CSTNode] = []
    for name in fields:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(item for item in value if isinstance(item, cst.CSTNode))
    return found


def walk(node: cst.CSTNode, into: Into = None) -> Iterator[cst.CSTNode]:
    """Every node under `node` (itself first), parents before children; a node for which `into`
    returns False is yielded but not entered."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if current is node or into is None or into(current):
            stack.extend(reversed(children(current)))


def walk_post(node: cst.CSTNode, into: Into = None) -> Iterator[cst.CSTNode]:
    """Every node under `node`, children before parents (a call's arguments before the call)."""
    stack: list[tuple[cst.CSTNode, bool]] = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            yield current
            continue
        stack.append((current, True))
        if current is node or into is None or into(current):
            stack.extend((child, False) for child in reversed(children(current)))


def dotted_text(node: cst.BaseExpression) -> str:
    """The source spelling of a Name/Attribute chain (`torch.cuda.amp`); "" for anything else."""
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        base = dotted_text(node.value)
        return f"{base}.{node.attr.value}" if base else ""
    return ""
