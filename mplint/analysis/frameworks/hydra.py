"""Hydra in the precision model: `@hydra.main(config_path="config", config_name="config")` runs the
function it decorates with the config Hydra composes from the repository's YAML files (hydra-core
1.3.2: `hydra/main.py`, `hydra/_internal/defaults_list.py`, read in the wheel), as launched:

- the primary config is `<config_path>/<config_name>.yaml`, `config_path` relative to the file of
  the decorated function;
- its `defaults:` list merges, in order: `- group: option` the file `<group>/<option>.yaml` under
  the key `group` (at the root when the file starts with `# @package _global_`), `- name` the file
  `name.yaml` of the same folder at the same place, `- override group: option` the choice of a group
  listed elsewhere, `- _self_` the file's own keys (last when it is not listed);
- a launch command's overrides (`python launch.py loss=dpo model=llama model.policy_dtype=float32`)
  pick a group's option (`group=option`) or set a value (`key.sub=value`, `+`/`++` prefixed too);
- `???` is a missing value, and an interpolation (`${model.policy_dtype}`) other than a whole
  reference to another key is unknown.

Each launch command of the script composes its own config (HALOs launches `model=llama` and
`model=qwen`, whose files agree on `policy_dtype: bfloat16` through their common `base_model`); the
values every composition agrees on are the configuration, the others unknown, so a script launched
with configurations that differ keeps only what they share.

The reader takes the YAML Hydra's configs are written in: block mappings and sequences, scalars.
What it does not read (flow collections, block scalars, anchors) is unknown, never a guess.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import libcst as cst

from mplint.analysis.frameworks.accelerate_launch import read_text, unquoted
from mplint.analysis.launch_options import OVERRIDE, Written
from mplint.analysis.scopes import Context
from mplint.analysis.values import ANY_KEY, UNKNOWN, Kind, Value

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

MAIN = "hydra.main"
# `hydra.utils.instantiate(config, *args, **kwargs)` (hydra-core 1.3.2 `_internal/instantiate/
# _instantiate2.py`): calls `config._target_` with the config's other keys and the call's arguments
# (which win); `_partial_: true` returns a `functools.partial` instead, and keys like it are Hydra's own.
INSTANTIATE = frozenset({"hydra.utils.instantiate", "hydra.utils.call"})
_RESERVED_KEYS = frozenset({"_target_", "_partial_", "_convert_", "_recursive_", "_args_"})

# A value no composition gives (`???`, an interpolation, a list): unknown to the precision model.
MISSING = object()
# Bounds on what one composition reads: configs nest a few levels, and a cycle must end.
_DEEPEST = 8
_LARGEST_CONFIG = 64 * 1024

Config = dict[str, object]


def decorated_config(self: Interpreter, decorator: cst.Call, ctx: Context) -> Value | None:
    """The config `@hydra.main(config_path, config_name)` hands the function it decorates, as the
    repository's launch commands compose it; None when the decorator is no `hydra.main` or names no
    config the repository holds."""
    from mplint.analysis.configuration import data_value, launched_commands  # it imports the frameworks

    if self.eval(decorator.func, ctx).name != MAIN:
        return None
    named = _arguments(self, decorator, ctx)
    if named is None:
        return None
    folder = Path(ctx.scope.module.path).parent / named[0]
    read: list[str] = []
    composed = [_composed(folder, named[1], overrides, read) for overrides in launched_commands(self) or ({},)]
    self.data_files.update(read)
    if any(config is None for config in composed):
        return None
    return data_value(_agreed([config for config in composed if config is not None]), yaml=True)


def instantiate(self: Interpreter, node: cst.Call, ctx: Context, args: list[Value], kwargs: dict[str, Value]) -> Value:
    """`policy = hydra.utils.instantiate(cfg.shakeoff_policy, base_params=p)`: the call of the config's
    `_target_` when it names code of the linted files (self-adaptive-llms' `policy.Policy` and
    `optim_modules.Reinforce`, whose `__init__` builds the optimizer); unknown otherwise."""
    config = args[0] if args else kwargs.get("config", UNKNOWN)
    if config.kind is not Kind.DICT:
        return UNKNOWN
    settings = {**dict(config.items), **{key: value for key, value in kwargs.items() if key != "config"}}
    target, partial = settings.get("_target_"), settings.get("_partial_")
    if target is None or not isinstance(target.const, str) or (partial is not None and partial.const is not False):
        return UNKNOWN
    callee = self.lookup_dotted(target.const, ctx.scope.module.path)
    if callee is None or callee.kind not in (Kind.FUNCTION, Kind.CLASS):
        return UNKNOWN
    given = {key: value for key, value in settings.items() if key not in _RESERVED_KEYS and key != ANY_KEY}
    return self.dispatch(node, ctx, callee, None, UNKNOWN, None, list(args[1:]), given)


# `hydra.main(config_path, config_name, version_base)`'s parameters, in order.
_PARAMETERS = ("config_path", "config_name", "version_base")


def _arguments(self: Interpreter, decorator: cst.Call, ctx: Context) -> tuple[str, str] | None:
    """`config_path` and `config_name` of the decorator, when both are literal strings."""
    given: dict[str, object] = {}
    for index, arg in enumerate(decorator.args[: len(_PARAMETERS)]):
        given[arg.keyword.value if arg.keyword is not None else _PARAMETERS[index]] = self.eval(arg.value, ctx).const
    path, name = given.get("config_path"), given.get("config_name")
    return (path, name.removesuffix(".yaml")) if isinstance(path, str) and isinstance(name, str) else None


def _composed(folder: Path, name: str, options: dict[str, Written], read: list[str]) -> Config | None:
    """The config one launch command composes (`options`: its overrides among its options)."""
    overrides = {key.removeprefix(OVERRIDE): value for key, value in options.items() if key.startswith(OVERRIDE)}
    given = {key: value for key, value in overrides.items() if isinstance(value, str) and (folder / key).is_dir()}
    primary = _loaded(folder / f"{name}.yaml", read)
    if primary is None:
        return None
    # Hydra settles every group's choice before it merges: an `override /model: llama` in the
    # experiment a command picks holds for the primary's `- model: ???` (the command line wins).
    choices = {**_overrides(folder, folder, primary[0], given, read, 0), **given}
    config = _with_defaults(folder, folder, primary[0], choices, read, 0)
    for key, value in overrides.items():
        if key not in given and isinstance(value, str):
            _set(config, key.split("."), value)
    return _resolved(config, config, 0)


def _entries(data: Config) -> list[tuple[str | None, str, object]]:
    """A config's defaults list, `_self_` and what cannot be read left out (`_entry`)."""
    listed = data.get("defaults")
    return [found for found in map(_entry, listed if isinstance(listed, list) else []) if found is not None]


def _entry(entry: object) -> tuple[str | None, str, object] | None:
    """An entry of a defaults list as (keyword, group, option): `- override /model: llama` is
    ("override", "/model", "llama"), `- base_model` is (None, "", "base_model"); `- _self_` none."""
    if isinstance(entry, str) and entry != "_self_":
        return None, "", entry
    if isinstance(entry, dict) and len(entry) == 1:
        ((key, option),) = entry.items()
        words = key.split()
        return (words[0] if len(words) == 2 else None), words[-1], option
    return None


def _overrides(
    root: Path, folder: Path, data: Config, choices: dict[str, str], read: list[str], depth: int
) -> dict[str, str]:
    """The choices the `override` entries of a config's defaults tree make, as chosen by `choices`."""
    found: dict[str, str] = {}
    for keyword, group, option in _entries(data):
        name = _group_name(group)
        if keyword == "override" and isinstance(option, str):
            found[name] = option
            continue
        included = _file(root, folder, group, choices.get(name, option), read)
        if included is not None and depth < _DEEPEST:
            found.update(_overrides(root, included[0].parent, included[1][0], choices, read, depth + 1))
    return found


def _group_name(group: str) -> str:
    """The group an entry chooses for (`/model@ref` chooses for `model`)."""
    return group.partition("@")[0].lstrip("/")


def _file(
    root: Path, folder: Path, group: str, option: object, read: list[str]
) -> tuple[Path, tuple[Config, bool]] | None:
    """The file an entry names (a group's option, the group relative to the including config's folder
    where it is there, else to the root; or a file of the same folder) and what it holds; None where
    no option is chosen (`???`, `null`) or no such file is there."""
    if not isinstance(option, str) or option in ("???", "null"):
        return None
    name = _group_name(group)
    if not group:
        candidates = [folder / option]
    elif group.startswith("/") or folder == root:
        candidates = [root / name / option]
    else:
        candidates = [folder / name / option, root / name / option]
    for candidate in candidates:
        path = candidate.with_suffix(".yaml")
        found = _loaded(path, read)
        if found is not None:
            return path, found
    return None


def _with_defaults(
    root: Path, folder: Path, data: Config, choices: dict[str, str], read: list[str], depth: int
) -> Config:
    """A config file's keys merged with those of the configs its `defaults:` list names, in order."""
    own = {key: value for key, value in data.items() if key != "defaults"}
    listed = data.get("defaults")
    merged: Config = {}
    if not isinstance(listed, list) or "_self_" not in listed:
        listed = [*(listed if isinstance(listed, list) else []), "_self_"]  # `_self_` last when not listed
    for entry in listed:
        if entry == "_self_":
            _merge(merged, own)
            continue
        found = _entry(entry)
        if found is None or found[0] == "override" or depth >= _DEEPEST:
            continue  # an override is a choice, settled before merging (`_overrides`)
        _, group, option = found
        name, package = _group_name(group), group.partition("@")[2]
        included = _file(root, folder, group, choices.get(name, option), read)
        if included is None:
            continue  # no option chosen: the group's keys stay missing
        path, (data_of, at_root) = included
        config = _with_defaults(root, path.parent, data_of, choices, read, depth + 1)
        if group and not at_root and package != "_global_":
            for part in reversed(package.split(".") if package else name.split("/")):
                config = {part: config}  # `- optim/adam` under `optim.adam`, `- model@ref: llama` under `ref`
        _merge(merged, config)
    return merged


def _loaded(path: Path, read: list[str]) -> tuple[Config, bool] | None:
    """A config file's mapping and whether it is placed at the root (`# @package _global_`)."""
    text = read_text(str(path), _LARGEST_CONFIG)
    if text is None:
        return None
    read.append(str(path))
    data = yaml_mapping(text)
    return data, re.search(r"^#\s*@package\s+_global_\s*$", text, re.MULTILINE) is not None


def _merge(into: Config, other: Config) -> None:
    """Merges `other` into `into` as OmegaConf merges configs: mappings key by key, else replaced."""
    for key, value in other.items():
        present = into.get(key)
        if isinstance(present, dict) and isinstance(value, dict):
            _merge(present, value)
        else:
            into[key] = _copied(value)


def _copied(value: object) -> object:
    return {key: _copied(item) for key, item in value.items()} if isinstance(value, dict) else value


def _set(config: Config, keys: list[str], value: str) -> None:
    """`key.sub=value` on the command line."""
    for key in keys[:-1]:
        inner = config.get(key)
        if not isinstance(inner, dict):
            inner = config[key] = {}
        config = inner
    config[keys[-1]] = value


_REFERENCE = re.compile(r"\$\{([\w.]+)\}")


def _resolved(value: object, root: Config, depth: int) -> Config:
    """The config with its missing values marked and whole references (`${model.dtype}`) replaced."""
    return {key: _resolved_value(item, root, depth) for key, item in _mapping(value).items()}


def _resolved_value(value: object, root: Config, depth: int) -> object:
    if isinstance(value, dict):
        return _resolved(value, root, depth)
    if not isinstance(value, str):
        return value
    if value == "???" or value.startswith(("[", "{")):
        return MISSING
    reference = _REFERENCE.fullmatch(value)
    if reference is not None:
        target: object = root
        for part in reference.group(1).split("."):
            target = target.get(part, MISSING) if isinstance(target, dict) else MISSING
        return _resolved_value(target, root, depth + 1) if depth < _DEEPEST else MISSING
    return MISSING if "${" in value else value


def _mapping(value: object) -> Config:
    """A mapping of a config, else none."""
    return value if isinstance(value, dict) else {}


def _agreed(configs: list[Config]) -> Config:
    """The keys of `configs` all give alike (mappings key by key); the others missing."""
    agreed: Config = {}
    for key, value in configs[0].items():
        others = [config.get(key, MISSING) for config in configs[1:]]
        if isinstance(value, dict) and all(isinstance(other, dict) for other in others):
            agreed[key] = _agreed([value, *(_mapping(other) for other in others)])
        else:
            agreed[key] = value if all(other == value for other in others) else MISSING
    return agreed


def yaml_mapping(text: str) -> Config:
    """A YAML file's top-level mapping with its block mappings and sequences at any depth, scalars
    as written (quotes removed; typed later as YAML types them); what it cannot read is MISSING."""
    lines = list(_content_lines(text))
    if not lines:
        return {}
    data, _ = _block(lines, 0, lines[0][0])
    return data if isinstance(data, dict) else {}


def _content_lines(text: str) -> list[tuple[int, str]]:
    """Each line with content: its indentation and its text, comments and document markers left out."""
    found = []
    for line in text.splitlines():
        content = _uncommented(line).rstrip()
        stripped = content.strip()
        if stripped and stripped not in ("---", "..."):
            found.append((len(content) - len(content.lstrip()), stripped))
    return found


def _uncommented(line: str) -> str:
    """The line up to a comment (a `#` at its start or after a space, outside quotes)."""
    quote = None
    for index, char in enumerate(line):
        if quote is not None:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def _block(lines: list[tuple[int, str]], start: int, indent: int) -> tuple[object, int]:
    """The block mapping or sequence at `lines[start]` (indented by `indent`), and the next line's index."""
    if lines[start][1] == "-" or lines[start][1].startswith("- "):
        items: list[object] = []
        index = start
        while index < len(lines) and lines[index][0] == indent and lines[index][1].startswith("-"):
            rest = lines[index][1][1:].strip()
            index += 1
            key, value = _key_value(rest)
            items.append({key: _scalar(value)} if key is not None and value else _scalar(rest))
            while index < len(lines) and lines[index][0] > indent:
                index += 1  # an item's nested block: not a defaults entry
        return items, index
    mapping: Config = {}
    index = start
    while index < len(lines) and lines[index][0] == indent:
        key, value = _key_value(lines[index][1])
        index += 1
        nested = index < len(lines) and (
            lines[index][0] > indent or (lines[index][0] == indent and lines[index][1].startswith("-"))
        )
        if key is None:
            continue
        if value == "" and nested:
            mapping[key], index = _block(lines, index, lines[index][0])
        else:
            mapping[key] = None if value == "" else _scalar(value)
        while index < len(lines) and lines[index][0] > indent:
            index += 1  # a block scalar's lines (`|`), left out
    return mapping, index


def _key_value(text: str) -> tuple[str | None, str]:
    """`key: value` (or `key:`) as its key and value; no key for anything else."""
    found = re.fullmatch(r"""(['"]?)([^'":]+?)\1:(?:\s+(.*))?""", text)
    if found is None:
        return None, ""
    return found.group(2).strip(), (found.group(3) or "").strip()


def _scalar(value: str) -> object:
    """A scalar as written, quotes removed; block scalars, anchors and aliases are missing."""
    return MISSING if value[:1] in ("|", ">", "&", "*", "!") else unquoted(value)
