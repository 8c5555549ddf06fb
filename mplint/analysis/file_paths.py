"""File paths as code builds them: `Path(__file__).absolute().parent / "ds_config.json"`,
`os.path.join(os.path.dirname(__file__), "configs", name)`. A path is a constant string marked as
one, so that a config file named relative to a module is read (`json.load(TEMPLATE.open())`,
safe-rlhf's DeepSpeed template) as one named by a literal is; `.parent` and `/` apply to paths
alone, never to other strings."""

from __future__ import annotations

import os

from mplint.analysis.values import Kind, Value

FILE_PATH = "a file path"

# Calls that make a path of a string, or give the same file's path.
_CONSTRUCTORS = frozenset(
    {"pathlib.Path", "pathlib.PurePath", "os.path.abspath", "os.path.realpath", "os.path.normpath", "os.fspath"}
)
_SAME_FILE_METHODS = frozenset({"absolute", "resolve", "expanduser"})


def path_value(text: str) -> Value:
    return Value(Kind.CONST, payload=text, op=FILE_PATH)


def module_file(path: str) -> Value:
    """`__file__` in the module at `path`."""
    return path_value(os.path.abspath(path))


def path_call(function: str, args: list[Value]) -> Value | None:
    """`Path(text)`, `os.path.join(...)`, `os.path.dirname(...)` of known strings; None otherwise."""
    texts = [arg.const for arg in args]
    if not texts or not all(isinstance(text, str) for text in texts):
        return None
    strings = [str(text) for text in texts]
    if function in _CONSTRUCTORS and len(strings) == 1:
        return path_value(strings[0])
    if function == "os.path.join":
        return path_value(os.path.join(*strings))
    if function == "os.path.dirname" and len(strings) == 1:
        return path_value(os.path.dirname(strings[0]))
    return None


def path_attribute(base: Value, attr: str) -> Value | None:
    """`path.parent`; None for anything but a path's parent."""
    if base.op != FILE_PATH or attr != "parent" or not isinstance(base.const, str):
        return None
    return path_value(os.path.dirname(base.const))


def path_method(receiver: Value, method: str, args: list[Value]) -> Value | None:
    """`path.absolute()`, `path.resolve()`, `path.joinpath("a", "b")`: the path they give; None for
    other methods and receivers."""
    if receiver.op != FILE_PATH or not isinstance(receiver.const, str):
        return None
    if method in _SAME_FILE_METHODS:
        return receiver
    if method == "joinpath":
        return joined(receiver, *args)
    return None


def joined(path: Value, *parts: Value) -> Value | None:
    """`path / "configs" / "ds.json"`: the path, when `path` is one and each part a known string."""
    texts = [part.const for part in parts]
    if path.op != FILE_PATH or not isinstance(path.const, str) or not all(isinstance(text, str) for text in texts):
        return None
    return path_value(os.path.join(path.const, *(str(text) for text in texts)))
