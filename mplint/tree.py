"""Fast walks over libcst trees, in source order, and the small readers rules share.

libcst's own `node.children` and `visit` rebuild or re-inspect every field, whitespace and
punctuation included; these walks read only the fields that hold code (never whitespace, commas,
parentheses or operator tokens), from a field list computed once per node type, and keep source
order, which the per-path rules rely on (a call's arguments before the call).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import libcst as cst

# The key under which a file's star imports (`from utils import *`) are listed among the statements
# that bind names (no name is spelled so): they may bind any name.
STAR_IMPORT = "import *"
# What a file read piece by piece is also asked for besides names (`PartialFile.top_level`): its
# top-level decorated classes (their decorators may register them) and `from ... import` statements
# (what a package's `__init__` lists). No Python name has a space.
DECORATED_CLASSES = "decorated classes"
FROM_IMPORTS = "from imports"

Into = Callable[[cst.CSTNode], bool] | None
# A node with a position in its file (what findings, fixes and messages point at).
Located = cst.CSTNode
# `try:` and `try: ... except* ...:` (same fields).
TRY_STATEMENTS: tuple[type[cst.Try], type[cst.TryStar]] = (cst.Try, cst.TryStar)
# A statement as the interpreter runs it: a compound statement, or one small statement of a line
# (`a = 1; b = 2` is two).
Statement = cst.BaseCompoundStatement | cst.BaseSmallStatement

# Fields that hold code; every other field is whitespace, punctuation, an operator token, or a name
# that binds rather than reads (`def name`, `attr` after a dot, a keyword argument's name).
_CODE_FIELDS = frozenset(
    {
        "annotation",
        "args",
        "bases",
        "body",
        "cases",
        "cause",
        "comparator",
        "comparisons",
        "decorator",
        "decorators",
        "default",
        "elements",
        "elt",
        "exc",
        "expression",
        "finalbody",
        "for_in",
        "format_spec",
        "func",
        "guard",
        "handlers",
        "ifs",
        "inner_for_in",
        "item",
        "items",
        "iter",
        "key",
        "keywords",
        "kwds",
        "kwonly_params",
        "left",
        "lower",
        "msg",
        "names",
        "orelse",
        "params",
        "parts",
        "pattern",
        "patterns",
        "posonly_params",
        "returns",
        "right",
        "slice",
        "star_arg",
        "star_kwarg",
        "step",
        "subject",
        "target",
        "targets",
        "test",
        "upper",
        "value",
        "cls",
        "type",
    }  # fmt: skip
)
# Where a node type's code fields are not in source order, or hold something else.
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {
    cst.Name: (),
    cst.Integer: (),
    cst.Float: (),
    cst.Imaginary: (),
    cst.SimpleString: (),
    cst.FormattedStringText: (),
    cst.Attribute: ("value",),
    cst.Arg: ("value",),
    cst.Param: ("annotation", "default"),
    cst.AsName: ("name",),
    cst.ImportAlias: (),
    cst.Global: (),
    cst.Nonlocal: (),
    cst.ExceptHandler: ("type", "body"),
    cst.ExceptStarHandler: ("type", "body"),
    cst.MatchCase: ("pattern", "guard", "body"),
    cst.WithItem: ("item", "asname"),
    # As CPython's `ast` orders them (decorators last), which the per-path rules were written for.
    cst.FunctionDef: ("params", "body", "decorators", "returns"),
    cst.ClassDef: ("bases", "keywords", "body", "decorators"),
}


def _code_fields(kind: type) -> tuple[str, ...]:
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        names = [field.name for field in dataclasses.fields(kind)] if dataclasses.is_dataclass(kind) else []
        fields = _CHILD_FIELDS[kind] = tuple(name for name in names if name in _CODE_FIELDS)
    return fields


def _node_types() -> frozenset[type]:
    found: set[type] = set()
    pending: list[type] = [cst.CSTNode]
    while pending:
        kind = pending.pop()
        found.add(kind)
        pending.extend(kind.__subclasses__())
    return frozenset(found)


# libcst's node classes derive from an ABC: `isinstance(value, cst.CSTNode)` goes through
# ABCMeta's check (a third of the interpreter's time on torch/nn); a set lookup does not.
NODE_TYPES = _node_types()


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The node's child nodes that hold code, in source order."""
    found: list[cst.CSTNode] = []
    for name in _code_fields(type(node)):
        value: Any = getattr(node, name, None)  # a node, a sequence of them, or anything else
        if type(value) in NODE_TYPES:
            found.append(value)
        elif type(value) in (list, tuple):
            found.extend(item for item in value if type(item) in NODE_TYPES)
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


def statements(block: cst.CSTNode | Sequence[cst.CSTNode] | None) -> list[Statement]:
    """The statements of a module, an indented block, a one-line suite (`if x: a; b`), an `else:` or
    `finally:` clause, in order, each small statement of a line on its own."""
    if block is None:
        return []
    if type(block) is cst.Else or type(block) is cst.Finally:
        block = block.body
    # A list or tuple of statements, or a node whose `body` is one (Module, IndentedBlock,
    # SimpleStatementSuite): exact type tests, which mypy does not narrow on (see NODE_TYPES).
    body = cast(
        "Sequence[Statement | cst.SimpleStatementLine]",
        block if type(block) in (list, tuple) else getattr(block, "body", ()),
    )
    found: list[Statement] = []
    for statement in body:
        if type(statement) is cst.SimpleStatementLine:
            found.extend(statement.body)
        else:  # a compound statement, or a small statement of a one-line suite (`if x: a; b`)
            found.append(cast("Statement", statement))  # not a SimpleStatementLine, tested just above
    return found


def dotted_text(node: cst.CSTNode) -> str:
    """The dotted spelling of a Name/Attribute chain (`torch.cuda.amp`); "" for anything else."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if not isinstance(node, cst.Name):
        return ""
    parts.append(node.value)
    return ".".join(reversed(parts))


def positional_args(call: cst.Call) -> list[cst.BaseExpression]:
    """The call's positional arguments, `*spread`s left out."""
    return [arg.value for arg in call.args if arg.keyword is None and not arg.star]


def keyword_arg(call: cst.Call, name: str) -> cst.BaseExpression | None:
    """The expression passed as keyword `name`, if it was."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def argument(call: cst.Call, index: int | None, keyword: str | None = None) -> cst.BaseExpression | None:
    """The expression passed as positional `index` or as `keyword`, whichever was used."""
    if keyword is not None:
        found = keyword_arg(call, keyword)
        if found is not None:
            return found
    positional = positional_args(call)
    return positional[index] if index is not None and index < len(positional) else None


def string_value(node: cst.CSTNode) -> str | None:
    """The text of a plain string literal (`"cuda"`, implicit concatenations too), else None."""
    if type(node) is cst.SimpleString:
        text = node.value
        quote = text[-1]
        if text[0] == quote and "\\" not in text:  # no prefix, no escapes: the text between the quotes
            width = 3 if len(text) >= 6 and text.startswith(quote * 3) else 1
            return text[width:-width]
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value  # libcst evaluates it with CPython's parser: correct, slower
        return value if isinstance(value, str) else None
    return None


# The scopes a def's body ends at (`enclosing_function`).
_FUNCTION_SCOPES = (cst.FunctionDef, cst.Lambda, cst.ClassDef)


def single_assignment(function: cst.FunctionDef, name: str) -> cst.BaseExpression | None:
    """The value `function` assigns to the plain name `name`, where one `name = ...` alone binds it."""
    values = [
        node.value
        for node in walk(function.body)
        if isinstance(node, cst.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0].target, cst.Name)
        and node.targets[0].target.value == name
    ]
    return values[0] if len(values) == 1 else None


# Statements whose parts run only on some paths: a branch of an `if`, a `try` handler.
_CONDITIONAL_PARTS = (cst.If, cst.Else, cst.ExceptHandler, cst.ExceptStarHandler)


def under_condition(node: cst.CSTNode, pieces: Sequence[tuple[int, cst.Module]]) -> bool | None:
    """Whether `node` runs only on some paths of the function (or module) around it: inside an
    `if`/`elif`/`else` branch or an `except` handler there. None where `node` is in none of `pieces`."""
    for _, piece in pieces:
        pending: list[tuple[cst.CSTNode, bool]] = [(piece, False)]
        while pending:
            current, conditional = pending.pop()
            if current is node:
                return conditional
            if isinstance(current, _FUNCTION_SCOPES):
                conditional = False  # a def's body runs whole when it is called
            for child in children(current):
                inside = isinstance(current, _CONDITIONAL_PARTS) and child is not getattr(current, "test", None)
                pending.append((child, conditional or inside))
    return None


def enclosing_function(node: cst.CSTNode, pieces: Sequence[tuple[int, cst.Module]]) -> cst.FunctionDef | None:
    """The innermost def around `node` (None at module level, or in a lambda or class body)."""
    for _, piece in pieces:
        pending: list[tuple[cst.CSTNode, cst.CSTNode | None]] = [(piece, None)]
        while pending:
            current, scope = pending.pop()
            if current is node:
                return scope if isinstance(scope, cst.FunctionDef) else None
            inner = current if isinstance(current, _FUNCTION_SCOPES) else scope
            pending.extend((child, inner) for child in children(current))
    return None
