"""Which `accelerate launch` configuration a script runs under, read from the linted repository
(mplint reads no YAML library: `scalars` reads the top-level keys an accelerate config file holds).

Read from accelerate 1.15.0 (`pip download accelerate==1.15.0`):
- `commands/config/config_args.py` `load_config_from_file`: `--config_file X` is read as JSON when
  X ends in `.json`, else as YAML; without it, `~/.cache/huggingface/accelerate/default_config.yaml`,
  which is outside the repository (unknown here). `BaseConfig.process_config`: `distributed_type` is
  required.
- `commands/launch.py` `_validate_launch_command`: `--mixed_precision` on the command line wins over
  the file's; a file without `mixed_precision` runs "no".
- `utils/launch.py` `prepare_deepspeed_cmd_env`: `distributed_type: DEEPSPEED` launches with
  `ACCELERATE_USE_DEEPSPEED=true`, and `state.py` `AcceleratorState.__init__` then makes the
  distributed type DEEPSPEED whatever `Accelerator(...)` is given; `DeepSpeedPlugin.set_mixed_precision`
  (`utils/dataclasses.py`) turns the DeepSpeed config's `fp16`/`bf16` section on for the mixed
  precision, filling the "auto" values of a `deepspeed_config_file` and keeping its explicit ones.

Which configuration a script runs under: the one an `accelerate launch --config_file X script.py`
line of the repository (a shell script, a README) names for it (a command naming a file the
repository lacks cannot run and is not counted); else, when every accelerate config
of the repository has the same effect, that one. Otherwise the default is unknown (the user's own
default config), and each other effect is a non-default configuration, reported as conditional.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from mplint.analysis.frameworks import deepspeed
from mplint.analysis.project import is_test_path
from mplint.analysis.values import Precision
from mplint.repository import repository_root

MIXED_PRECISION = {"fp16": Precision.FP16, "bf16": Precision.BF16, "no": Precision.FP32}
# How YAML 1.1 (PyYAML, which accelerate uses) reads an unquoted `no`/`false`: mixed precision off.
_OFF = ("no", "false", "none", "null", "")
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
LAUNCH_SUFFIXES = (".sh", ".bash", ".md", ".rst", ".yaml", ".yml", ".slurm", ".sbatch")
_SKIPPED_DIRECTORIES = frozenset({"node_modules", "__pycache__", "venv", "build", "dist", "site-packages"})
# Launch commands are read from files up to this size; configs are small, and a JSON file larger
# than `_LARGEST_JSON` is data.
LARGEST_TEXT = 256 * 1024
_LARGEST_JSON = 16 * 1024
# A repository walk stops after this many directory entries (a run started at a home directory).
_MOST_ENTRIES = 20_000
_LAUNCH = re.compile(r"\baccelerate\s+launch\s")
_CONFIG_FLAGS = ("--config_file", "--config-file")
# A shell assignment (`export NAME=value` too) and a use of the variable (`$NAME`, `${NAME}`).
_ASSIGNMENT = re.compile(r"\s*(?:export\s+)?([A-Za-z_]\w*)=(.*)")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_]\w*)\}|([A-Za-z_]\w*))")
_PRECISION_FLAGS = ("--mixed_precision", "--mixed-precision")


@dataclass(frozen=True)
class LaunchConfig:
    """What an accelerate config file (`path`) makes of an `Accelerator()`: its mixed precision (FP32
    for "no"; None when unknown, "fp8" or a DeepSpeed config's "auto"), and whether DeepSpeed's
    engine runs the model (`distributed_type: DEEPSPEED`), or Megatron-LM's (precision unknown)."""

    path: str
    name: str  # as a launch command names it: relative to the repository's root
    precision: Precision | None
    deepspeed: bool
    megatron: bool = False
    # The DeepSpeed JSON config it names, when it was read (a dependency too).
    deepspeed_file: str | None = None

    @property
    def effect(self) -> tuple[Precision | None, bool, bool]:
        """What two configs that run a script alike share."""
        return self.precision, self.deepspeed, self.megatron


@dataclass(frozen=True)
class Launch:
    """The configurations a script may run under: the one it runs by default (None: the user's
    own default config, unknown), the other configurations of the repository with another effect,
    each with the condition that names it, and the files this was read from (cache dependencies)."""

    default: LaunchConfig | None
    alternatives: tuple[tuple[LaunchConfig, str], ...]
    read: tuple[str, ...]
    # Started by default without `accelerate launch` (`torchrun train.py`): no config file is read.
    plain: bool = False

    @property
    def without_config(self) -> bool:
        """Whether the script runs by default with no accelerate config: the repository holds none,
        or its commands start the script plainly."""
        return self.default is None and (self.plain or self == NO_LAUNCH)


NO_LAUNCH = Launch(None, (), ())


def launch_of(script: str, run_root: str) -> Launch:
    """The accelerate launch configurations of the script at `script`, from its repository
    (`repository_of`; `run_root`, the folder the run was started on, when none is found)."""
    script_path = os.path.abspath(script)
    root = repository_root(script, run_root)
    configs: list[LaunchConfig] = []
    commands: list[LaunchCommand] = []
    plain = False  # a command starts the script without `accelerate launch`
    for path, text in repository_texts(root):
        if path.endswith(_CONFIG_SUFFIXES):
            config = _config(path, text, root)
            if config is not None:
                configs.append(config)
                continue
        if path.endswith(LAUNCH_SUFFIXES):
            commands.extend(launch_commands(path, text))
            plain = plain or any(is_script(word, script_path, path, root) for word in plain_launches(path, text))
    if not configs:
        return NO_LAUNCH
    by_path = {config.path: config for config in configs}
    named: list[LaunchConfig | None] = []
    named_anywhere: set[str] = set()  # configs some command names, for any script
    for command in commands:
        config = _resolve(command.config, command.file, root, by_path) if command.config is not None else None
        if config is None and command.config is not None and not names_a_file(command.config, command.file, root):
            continue  # a command naming a config the repository lacks cannot run as written (X-R1's README)
        if config is not None:
            named_anywhere.add(config.path)
        if command.script is None or not is_script(command.script, script_path, command.file, root):
            continue
        if config is not None and command.precision is not None:
            config = replace(config, precision=_precision(command.precision))
        named.append(config)
    deepspeed_files = (config.deepspeed_file for config in configs if config.deepspeed_file is not None)
    read = tuple(sorted({*by_path, *deepspeed_files, *(command.file for command in commands)}))
    # Unnamed, a config beside another folder's scripts is theirs (EAGLE's traineagle3/default_config.yaml
    # is not eagle/train/main.py's); one in a folder of configs may be any script's.
    reachable = [config for config in configs if _reaches(config.path, script_path, root)]
    if plain:
        # Started plainly (`torchrun train.py`): no accelerate config by default, whatever configs lie
        # beside it (those of the repository's other scripts); an `accelerate launch` of it too is
        # another configuration (async_rlhf's online_dpo.py: `python` on one GPU, ZeRO-2 on four).
        launched = [config for config in named if config is not None]
        return Launch(None, _alternatives(launched), read, plain=True)
    chosen = {config.effect if config else None for config in named}
    if len(chosen) == 1 and named[0] is not None:
        # The configs no command names are other ways to launch it (orpo ships ds2.yaml beside the
        # fsdp.yaml its scripts name); those named for other scripts are theirs.
        unnamed = [config for config in reachable if config.path not in named_anywhere]
        return Launch(named[0], _alternatives(unnamed, exclude=named[0].effect), read)
    if len(_by_effect(reachable)) == 1 and not named:
        return Launch(reachable[0], (), read)
    return Launch(None, _alternatives(reachable), read)


def _reaches(config: str, script: str, root: str) -> bool:
    """Whether a launch config no command names may be the script's: it lies in the script's folder
    or above it, or in a folder without Python files of its own (`configs/`, `accelerate_configs/`)
    of the project that holds the script (a folder of configs inside another project of a monorepo,
    FlagEmbedding's `research/Long_LLM/activation_beacon/data/config/`, is that project's, and one
    among test code its tests': TRL's `tests/distributed/data/accelerate_configs/`)."""
    folder = os.path.dirname(config)
    if Path(script).parent.is_relative_to(folder):
        return True
    try:
        if any(name.endswith(".py") for name in os.listdir(folder)):
            return False
    except OSError:
        return True
    if is_test_path(_relative(config, root)) and not is_test_path(_relative(script, root)):
        return False
    return Path(script).parent.is_relative_to(_project_of(folder, root))


def _relative(path: str, root: str) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def _project_of(folder: str, root: str) -> str:
    """The nearest folder at or above `folder` with a README of its own, up to the repository's root:
    the project it belongs to."""
    project, top = os.path.abspath(folder), os.path.abspath(root)
    while project != top and not any(os.path.isfile(os.path.join(project, name)) for name in _READMES):
        parent = os.path.dirname(project)
        if parent == project:
            return top  # `folder` outside the repository's root
        project = parent
    return project


_READMES = ("README.md", "README.rst", "README")


def reachable_json(script: str, run_root: str) -> Iterator[tuple[str, dict[str, object]]]:
    """The repository's small JSON objects that a launch of the script may name as its config: in
    the script's folder or above it, or in a folder of configs (`_reaches`)."""
    script_path = os.path.abspath(script)
    root = repository_root(script, run_root)
    for path, text in repository_texts(root):
        if not path.endswith(".json") or not _reaches(path, script_path, root):
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict):
            yield path, data


def _by_effect(configs: list[LaunchConfig]) -> dict[tuple[Precision | None, bool, bool], list[LaunchConfig]]:
    """The configs grouped by what they make of a script, in path order."""
    effects: dict[tuple[Precision | None, bool, bool], list[LaunchConfig]] = {}
    for config in sorted(configs, key=lambda config: config.path):
        effects.setdefault(config.effect, []).append(config)
    return effects


def _alternatives(
    configs: list[LaunchConfig], exclude: tuple[Precision | None, bool, bool] | None = None
) -> tuple[tuple[LaunchConfig, str], ...]:
    """One config per effect other than `exclude`'s, with the condition that names its configs."""
    return tuple((alike[0], _condition(alike)) for effect, alike in _by_effect(configs).items() if effect != exclude)


@dataclass(frozen=True)
class LaunchCommand:
    """An `accelerate launch` command written in `file` (a shell script, a README): the script it
    starts, the config file it passes and the mixed precision it sets on the command line (each
    None when absent or not a literal)."""

    file: str
    script: str | None
    config: str | None
    precision: str | None


def _parsed_commands(path: str, text: str) -> Iterator[LaunchCommand]:
    for line in substituted_lines(text):
        found = _LAUNCH.search(line)
        if found is None:
            continue
        try:
            words = shlex.split(line[found.end() :], comments=True)
        except ValueError:  # an unbalanced quote: not a command to read
            continue
        yield LaunchCommand(path, _script_word(words), _flag(words, _CONFIG_FLAGS), _flag(words, _PRECISION_FLAGS))


def low_precision_config(command: LaunchCommand, root: str) -> tuple[bool, tuple[str, ...]]:
    """Whether an `accelerate launch` command runs its script in 16-bit mixed precision: it sets
    `--mixed_precision bf16`, or names an accelerate config file that does (`mixed_precision: bf16`,
    or its DeepSpeed config's fp16/bf16 section); with the files read to tell."""
    if command.precision is not None:
        precision = _precision(command.precision)
        return precision is not None and precision.is_low, ()
    if command.config is None:
        return False, ()
    for base in (os.path.dirname(command.file), root):
        path = os.path.normpath(os.path.join(base, command.config))
        text = read_text(path, LARGEST_TEXT)
        if text is not None:
            config = _config(path, text, root)
            low = config is not None and config.precision is not None and config.precision.is_low
            named = config.deepspeed_file if config is not None and config.deepspeed_file is not None else None
            return low, (path,) if named is None else (path, named)
    return False, ()


# A command a README writes inline, as a line or a list item of its own in a code span (`` - `python
# online_dpo.py --config x.yml` ``); one in a sentence is an example of the prose, not a step to run.
_CODE_SPAN = re.compile(r"\s*(?:[-*+]|\d+[.)])?\s*`([^`]+)`\s*[.:,;]?\s*")


def substituted_lines(text: str) -> Iterator[str]:
    """The lines of a shell script (or of a README's commands), continuation lines joined; a shell
    variable assigned a literal on an earlier line (`config_file="configs/zero2.yaml"`) reads as its
    value."""
    variables: dict[str, str] = {}
    for line in _quoted_joined(re.sub(r"\\\r?\n", " ", text).splitlines()):
        substituted = _VARIABLE.sub(lambda used: variables.get(used.group(1) or used.group(2), used.group(0)), line)
        span = _CODE_SPAN.fullmatch(substituted) if "`" in substituted else None
        yield substituted if span is None else span.group(1)
        assigned = _ASSIGNMENT.fullmatch(substituted)  # `X=1` alone, or before a command (`X=1 python ...`)
        if assigned is not None:
            _assign(variables, assigned.group(1), assigned.group(2))
            held = _held_command(substituted)
            if held is not None:
                yield held


def _quoted_joined(lines: list[str]) -> Iterator[str]:
    """The lines, an assignment whose quoted value runs over several lines (`cmd="accelerate launch
    ...` with a line inside the quotes that ends without a backslash) joined into one."""
    index = 0
    while index < len(lines):
        line, index = lines[index], index + 1
        assigned = _ASSIGNMENT.fullmatch(line)
        if assigned is not None and assigned.group(2)[:1] in ("'", '"') and not _splits(line):
            last = min(len(lines), index + _MOST_QUOTED_LINES)
            end = next(
                (stop for stop in range(index + 1, last + 1) if _splits(" ".join(lines[index - 1 : stop]))), None
            )
            if end is not None:
                line, index = " ".join(lines[index - 1 : end]), end
        yield line


# The most lines one quoted value of a shell script is read over.
_MOST_QUOTED_LINES = 50


def _splits(text: str) -> bool:
    """Whether shell words can be read from `text` (its quotes are closed)."""
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def _held_command(line: str) -> str | None:
    """The command a variable is assigned as one quoted string (`cmd="accelerate launch train.py
    --mixed_precision bf16"`, run by `eval $cmd`), else None."""
    assigned = _ASSIGNMENT.fullmatch(line)
    try:
        words = shlex.split(assigned.group(2), comments=True) if assigned is not None else []
    except ValueError:
        return None
    return words[0] if len(words) == 1 else None


def _assign(variables: dict[str, str], name: str, written: str) -> None:
    """`name=written` in a shell script, the variables known substituted in `written`: its value when
    it is one literal word, quoted or not (`training_args="--fp16 --deepspeed ds.json"`, expanded
    unquoted into a command as the options it holds), else unknown."""
    try:
        words = shlex.split(written, comments=True)
    except ValueError:
        words = []
    if len(words) == 1 and "$" not in words[0] and "`" not in words[0]:
        variables[name] = words[0]
    else:
        variables.pop(name, None)


Parsed = TypeVar("Parsed")


def parsed_once(memo: dict[str, tuple[str, Parsed]], path: str, text: str, parse: Callable[[str], Parsed]) -> Parsed:
    """`parse(text)` for the file at `path`, kept in `memo` with the text it was read from
    (`read_text` hands out the same string while a file is unchanged): every script of a run scans
    the repository's launch files, and diffusers' READMEs hold thousands of commands."""
    known = memo.get(path)
    if known is None or known[0] is not text:
        known = memo[path] = (text, parse(text))
    return known[1]


_COMMANDS: dict[str, tuple[str, tuple[LaunchCommand, ...]]] = {}


# A command that starts a script without `accelerate launch`, which then reads no config file (an
# `Accelerator()` runs with its arguments, a Trainer with its training arguments).
_PLAIN_LAUNCHER = re.compile(r"(?:^|[\s/=;&|(])(?:python[\d.]*|torchrun|deepspeed|srun)\s")
_PLAIN: dict[str, tuple[str, tuple[str, ...]]] = {}


def plain_launches(path: str, text: str) -> tuple[str, ...]:
    """The scripts the file at `path` starts without `accelerate launch` (parsed once)."""
    return parsed_once(_PLAIN, path, text, lambda read: tuple(_plain_scripts(read)))


def _plain_scripts(text: str) -> Iterator[str]:
    for line in substituted_lines(text):
        if _LAUNCH.search(line) is None and _PLAIN_LAUNCHER.search(line) is not None:
            started = started_script(line)
            if started is not None:
                yield started[0][started[1]]


def started_script(line: str) -> tuple[list[str], int] | None:
    """A command line's words and where among them the script it starts is (`script_index`); None
    where it starts none, or where its quotes do not balance (no command to read)."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    start = script_index(words)
    return None if start is None else (words, start)


def launch_commands(path: str, text: str) -> tuple[LaunchCommand, ...]:
    """Each `accelerate launch` command of the file at `path`, whose text is `text` (parsed once)."""
    return parsed_once(
        _COMMANDS, path, text, lambda read: tuple(_parsed_commands(path, read)) if _LAUNCH.search(read) else ()
    )


def scalars(text: str) -> dict[str, object]:
    """The top-level keys of a YAML or JSON mapping, with their scalar values as written (quotes
    removed), and those of a block mapping one level down (`deepspeed_config:` then indented
    `zero_stage: 2`). Lists, flow mappings other than `{}` and multi-line values are left out."""
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    found: dict[str, object] = {}
    section: dict[str, object] | None = None
    for line in text.splitlines():
        content = line.split(" #", 1)[0].rstrip()
        if not content.strip() or content.lstrip().startswith(("#", "-", "---")):
            continue
        key, colon, value = content.strip().partition(":")
        if not colon or not re.fullmatch(r"[\w.-]+", key):
            continue
        value = unquoted(value.strip())
        if not line[0].isspace():
            section = {} if value in ("", "{}") else None
            found[key] = section if section is not None else value
        elif section is not None:
            section[key] = value
    return found


def _config(path: str, text: str, root: str) -> LaunchConfig | None:
    """The accelerate config a file holds: a mapping with a `distributed_type`; else None."""
    if "distributed_type" not in text:
        return None
    data = scalars(text)
    distributed = data.get("distributed_type")
    if not isinstance(distributed, str):
        return None
    config = LaunchConfig(
        path,
        os.path.relpath(path, root),
        _precision(data.get("mixed_precision", "no")),
        deepspeed=distributed == "DEEPSPEED",
        megatron=distributed == "MEGATRON_LM",
    )
    section = data.get("deepspeed_config")
    name = section.get("deepspeed_config_file") if isinstance(section, dict) else None
    if not config.deepspeed or not isinstance(name, str) or name in _OFF:
        return config
    # A DeepSpeed JSON config of its own, named relative to where the launch runs (a folder between
    # the config and the repository's root): its explicit fp16/bf16 sections win, its "auto" ones
    # take the mixed precision; unknown when it cannot be read.
    found = _read_json(name, _folders_between(os.path.dirname(path), root))
    if found is None:
        return replace(config, precision=None)
    deepspeed_file, settings = found
    precision = deepspeed.precision_of(settings) or config.precision
    return replace(config, precision=precision, deepspeed_file=deepspeed_file)


def _folders_between(folder: str, root: str) -> list[str]:
    """`folder` and each folder above it, up to `root`."""
    found = [folder]
    while folder != root and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
        found.append(folder)
    return found


def _precision(setting: object) -> Precision | None:
    if setting is False or setting is None:
        return Precision.FP32
    text = str(setting).strip().lower()
    return Precision.FP32 if text in _OFF else MIXED_PRECISION.get(text)


def _read_json(name: str, bases: list[str]) -> tuple[str, dict[str, object]] | None:
    """The first JSON file `name` relative to one of `bases` that holds a mapping: its path and data."""
    for base in bases:
        path = os.path.normpath(os.path.join(base, name))
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return (path, data) if isinstance(data, dict) else None
    return None


def _resolve(name: str, launch_file: str, root: str, configs: dict[str, LaunchConfig]) -> LaunchConfig | None:
    """The config a launch command names, relative to the file that holds the command or to the
    repository's root (where the command may be run from); None when it is no accelerate config."""
    for base in (os.path.dirname(launch_file), root):
        found = configs.get(os.path.normpath(os.path.join(base, name)))
        if found is not None:
            return found
    return None


def names_a_file(name: str, launch_file: str, root: str) -> bool:
    """Whether `name` is a file relative to the command's file or to the repository's root."""
    return any(os.path.isfile(os.path.join(base, name)) for base in (os.path.dirname(launch_file), root))


def launched_names(launched: str) -> tuple[str, ...]:
    """The file names the script a command launches may have: a module's may be its package's `__main__.py`."""
    if launched.endswith(".py"):
        return (os.path.basename(launched),)
    return (launched.rpartition(".")[2] + ".py", "__main__.py")


def mentions_script(text: str, script: str) -> bool:
    """Whether `text` may hold a command launching the file at `script` (by its name, or as a module:
    `python -m pkg.train`, `deepspeed --module pkg.ppo` for pkg/ppo/__main__.py)."""
    name = os.path.basename(script)
    module = os.path.basename(os.path.dirname(script)) if name == "__main__.py" else name.removesuffix(".py")
    return name in text or (module in text and any(flag in text for flag in MODULE_FLAGS))


def is_script(launched: str, script: str, launch_file: str, root: str) -> bool:
    """Whether a launch command's script is the analysed one: the same file relative to the command's
    file or the repository's root; the same name when the command's path leads to no file."""
    bases = (os.path.dirname(launch_file), root)
    if not launched.endswith(".py"):  # a module run as a script: its file or its package's __main__
        paths = [os.path.join(base, *launched.split(".")) for base in bases]
        return script in {os.path.normpath(path + suffix) for path in paths for suffix in (".py", "/__main__.py")}
    candidates = [os.path.normpath(os.path.join(base, launched)) for base in bases]
    if script in candidates:
        return True
    return not any(os.path.isfile(candidate) for candidate in candidates) and (
        os.path.basename(launched) == os.path.basename(script)
    )


def _condition(alike: list[LaunchConfig]) -> str:
    """How a non-default configuration is named in a finding."""
    names = " or ".join(f"`{config.name}`" for config in alike[:2])
    more = f" (or {len(alike) - 2} more)" if len(alike) > 2 else ""
    return f"launched with `accelerate launch --config_file` {names}{more}"


def _flag(words: list[str], flags: tuple[str, ...]) -> str | None:
    """The value of a command-line option (`--config_file x`, `--config_file=x`), when a literal."""
    for index, word in enumerate(words):
        name, equals, value = word.partition("=")
        if name in flags:
            found = value if equals else (words[index + 1] if index + 1 < len(words) else "")
            return found if found and "$" not in found else None
    return None


def _script_word(words: list[str]) -> str | None:
    index = script_index(words)
    return None if index is None else words[index]


def script_index(words: list[str]) -> int | None:
    """Where the script a command starts is among its words: the first naming a `.py` file, or a
    module run as a script (`python -m pkg.train`, `deepspeed --module pkg.ppo`; not a launcher's
    own module, `python -m torch.distributed.launch train.py`); None when there is none or it is a
    `$VARIABLE`."""
    for index, word in enumerate(words):
        if word.endswith(".py") and not word.startswith("-"):
            return None if "$" in word else index
        module = words[index + 1] if word in MODULE_FLAGS and index + 1 < len(words) else None
        if module is not None and _MODULE.fullmatch(module) and not module.startswith(_LAUNCHER_MODULES):
            return index + 1
    return None


# How a launcher is told to run a module as a script, what names one, and the modules that are
# launchers themselves (the script comes after them).
MODULE_FLAGS = frozenset({"-m", "--module"})
_MODULE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_LAUNCHER_MODULES = ("torch.", "accelerate", "deepspeed", "trl.", "lightning", "pytest", "pip", "venv")


def unquoted(value: str) -> str:
    """A YAML scalar as written, without the quotes around it."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def repository_texts(root: str) -> Iterator[tuple[str, str]]:
    """The small text files of the repository that may hold an accelerate config or a launch command."""
    pending, seen = [root], 0
    while pending and seen < _MOST_ENTRIES:
        directory = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError:
            continue
        seen += len(entries)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not _skipped(entry):
                    pending.append(entry.path)
            elif entry.name.endswith(_CONFIG_SUFFIXES + LAUNCH_SUFFIXES):
                text = read_text(entry.path, _LARGEST_JSON if entry.name.endswith(".json") else LARGEST_TEXT)
                if text is not None:
                    yield entry.path, text


def _skipped(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    return (
        name.startswith(".")
        or name in _SKIPPED_DIRECTORIES
        or name.endswith(".egg-info")
        or os.path.isfile(os.path.join(entry.path, "pyvenv.cfg"))
    )


# Texts read, by path, with the (modification time, size) they were read at: a long-lived process
# (the language server) reads a file again once it changes; a run reads each once however many
# scripts ask.
_READ: dict[str, tuple[tuple[int, int], str | None]] = {}


def read_text(path: str, largest: int) -> str | None:
    """The text of the file at `path` when it is at most `largest` bytes of UTF-8, read once while unchanged."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    stamp = (status.st_mtime_ns, status.st_size)
    known = _READ.get(path)
    if known is not None and known[0] == stamp:
        return known[1]
    text: str | None = None
    if status.st_size <= largest:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = None
    _READ[path] = (stamp, text)
    return text
