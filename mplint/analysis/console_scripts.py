"""Which function of a repository each of its console scripts runs with the command line as the
function's arguments: `litgpt finetune_lora microsoft/phi-2 --config recipe.yaml` runs litgpt's
`finetune/lora.py:setup(precision=..., ...)`.

A package declares its commands in `pyproject.toml` (`[project.scripts]`, `litgpt =
"litgpt.__main__:main"`; Poetry's `[tool.poetry.scripts]` alike). Where that function hands its
components to jsonargparse's `CLI` (or `auto_cli`), the command runs one of them, read from jsonargparse
4.53.0 (`pip download jsonargparse==4.53.0`, `_cli.py` `auto_cli`):
- a single function: the command's options are its parameters (`--precision bf16-true`);
- a list of functions: a subcommand per function, named by the function's `__name__`;
- a dict: a subcommand per key (`{"finetune_lora": setup}`; a nested dict is a subcommand of
  subcommands, not read here);
- each parser takes `--config FILE` (`ActionConfigFile`), read where it stands among the options
  (later options win), and `_run_component` calls the function with the parsed values as keywords.

Read with CPython's parser, not the analysis: only a literal components argument counts (a dict or
list display, or a name the module binds once to one), its functions named by a `def` of the module
or imported from the package (`from litgpt.finetune.lora import setup as finetune_lora_fn`).
"""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass

from mplint.analysis.frameworks.accelerate_launch import LARGEST_TEXT, parsed_once, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# A subcommand and the function it runs: (absolute path of its file, its name). The key None stands
# for a command without subcommands (a single function).
Runs = dict[str | None, tuple[str, str]]
_CLI_FUNCTIONS = frozenset({"CLI", "auto_cli"})


@dataclass(frozen=True)
class ConsoleScripts:
    """Per console script of a repository, what each of its subcommands runs; with the files read."""

    scripts: dict[str, Runs]
    read: tuple[str, ...]


def console_scripts(root: str) -> ConsoleScripts:
    """The console scripts the package at `root` declares whose function runs jsonargparse's `CLI`."""
    read: list[str] = []
    declared = _declared(root, read)
    scripts: dict[str, Runs] = {}
    for name, target in declared.items():
        module, _, function = target.partition(":")
        path = _module_file(root, module)
        if path is None or not function:
            continue
        read.append(path)
        runs = _cli_runs(path, function.strip(), root)
        if runs:
            scripts[name] = runs
    return ConsoleScripts(scripts, tuple(read))


def _declared(root: str, read: list[str]) -> dict[str, str]:
    """The commands `pyproject.toml` declares, name -> "module:function"."""
    path = os.path.join(root, "pyproject.toml")
    text = read_text(path, LARGEST_TEXT)
    if text is None:
        return {}
    read.append(path)
    return parsed_once(_DECLARED, path, text, _scripts_table)


# What each `pyproject.toml` and entry module read declares, with the text it was read from: every
# function a run analyses on its own asks.
_DECLARED: dict[str, tuple[str, dict[str, str]]] = {}
_RUNS: dict[str, tuple[str, Runs]] = {}


def _scripts_table(text: str) -> dict[str, str]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}
    tables = (data.get("project", {}).get("scripts"), data.get("tool", {}).get("poetry", {}).get("scripts"))
    return {
        name: target
        for table in tables
        if isinstance(table, dict)
        for name, target in table.items()
        if isinstance(target, str)
    }


def _module_file(root: str, module: str) -> str | None:
    """The file of a dotted module of the package, at the root or in a `src/` layout."""
    parts = module.strip().split(".")
    for base in (root, os.path.join(root, "src")):
        for candidate in (os.path.join(base, *parts) + ".py", os.path.join(base, *parts, "__init__.py")):
            if os.path.isfile(candidate):
                return os.path.abspath(candidate)
    return None


def _cli_runs(path: str, function: str, root: str) -> Runs:
    """What the jsonargparse `CLI(...)` call in `function` of the module at `path` runs."""
    text = read_text(path, LARGEST_TEXT)
    if text is None:
        return {}
    return parsed_once(_RUNS, f"{path}:{function}", text, lambda read: _runs_in(read, path, function, root))


def _runs_in(text: str, path: str, function: str, root: str) -> Runs:
    try:
        module = ast.parse(text)
    except (SyntaxError, ValueError):
        return {}
    names = _module_names(module, path, root)
    entry = names.get(function)
    if entry is None or not isinstance(entry.node, ast.FunctionDef):
        return {}
    for node in ast.walk(entry.node):
        if isinstance(node, ast.Call) and _is_cli(node.func, names):
            components = (
                node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "components"), None)
            )
            return _components(components, names) if components is not None else {}
    return {}


@dataclass(frozen=True)
class _Bound:
    """What a module-level name is: a `def` or a value the module binds (`node`), or a name
    imported from `module` (its file when it is one of the package's)."""

    file: str | None
    name: str
    node: ast.AST | None = None
    module: str = ""


def _module_names(module: ast.Module, path: str, root: str) -> dict[str, _Bound]:
    """The module's top-level names: its functions, the names it binds once, those it imports."""
    names: dict[str, _Bound] = {}
    rebound: set[str] = set()
    for statement in module.body:
        if isinstance(statement, ast.FunctionDef):
            names[statement.name] = _Bound(path, statement.name, statement)
        elif isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                if target.id in names:
                    rebound.add(target.id)
                names[target.id] = _Bound(path, target.id, statement.value)
        elif isinstance(statement, ast.ImportFrom):
            source = _imported_file(statement, path, root)
            for alias in statement.names:
                names[alias.asname or alias.name] = _Bound(source, alias.name, module=statement.module or "")
    return {name: bound for name, bound in names.items() if name not in rebound}


def _imported_file(statement: ast.ImportFrom, path: str, root: str) -> str | None:
    """The file of the package a `from X import y` reads `y` from (relative imports too)."""
    if statement.level:
        base = os.path.dirname(path)
        for _ in range(statement.level - 1):
            base = os.path.dirname(base)
        parts = (statement.module or "").split(".") if statement.module else []
        for candidate in (os.path.join(base, *parts) + ".py", os.path.join(base, *parts, "__init__.py")):
            if parts and os.path.isfile(candidate):
                return os.path.abspath(candidate)
        return None
    return _module_file(root, statement.module or "")


def _is_cli(function: ast.expr, names: dict[str, _Bound]) -> bool:
    """`CLI` or `auto_cli` imported from jsonargparse, or `jsonargparse.CLI`."""
    if isinstance(function, ast.Name):
        bound = names.get(function.id)
        return bound is not None and bound.name in _CLI_FUNCTIONS and bound.module.split(".")[0] == "jsonargparse"
    return (
        isinstance(function, ast.Attribute)
        and function.attr in _CLI_FUNCTIONS
        and isinstance(function.value, ast.Name)
        and function.value.id == "jsonargparse"
    )


def _components(node: ast.expr, names: dict[str, _Bound]) -> Runs:
    """The subcommands a literal components argument makes, each with the function it runs."""
    bound = names.get(node.id) if isinstance(node, ast.Name) else None
    if bound is not None and isinstance(bound.node, (ast.Dict, ast.List)):
        node = bound.node
    if isinstance(node, ast.Dict):
        keyed = zip(node.keys, node.values, strict=True)
        return {
            key.value: found
            for key, value in keyed
            if isinstance(key, ast.Constant) and isinstance(key.value, str)
            for found in [_function(value, names)]
            if found is not None
        }
    if isinstance(node, ast.List):
        functions = [_function(element, names) for element in node.elts]
        return {found[1]: found for found in functions if found is not None}
    found = _function(node, names)
    return {None: found} if found is not None else {}


def _function(node: ast.expr, names: dict[str, _Bound]) -> tuple[str, str] | None:
    """The function a name stands for: a `def` of the module or one imported from the package."""
    bound = names.get(node.id) if isinstance(node, ast.Name) else None
    if bound is None or bound.file is None or not (bound.module or isinstance(bound.node, ast.FunctionDef)):
        return None
    return bound.file, bound.name
