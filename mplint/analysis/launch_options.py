"""The configuration a repository gives a script outside its code: the options its launch commands
give it, and (for the plan) the config files it names.

A training script is seldom started plainly: `scripts/train.sh` runs `torchrun train.py --bf16 True
--deepspeed ds_z3.json`. Where every command of the repository that starts the script (a shell
script, a README, a Slurm file) gives an option the same value, that value is the option's default
here (argparse's `add_argument`, a field of an `HfArgumentParser` dataclass). An option the commands
disagree on, or that one of them leaves out, keeps the default written in code; a repository with no
command for the script changes nothing. Commands are read as `accelerate_launch` reads `accelerate
launch` lines: continuation lines joined, shell variables assigned a literal substituted.

A parser that reads a YAML file named by `--config` (TRL's `TrlParser.parse_args_and_config`, trl
0.15.2 `scripts/utils.py`: the file's top-level keys set the dataclass fields' defaults, the command
line wins over them) sees each command's options over its file's settings (`configured`): the open-r1
family's `--config recipes/x.yaml` with `torch_dtype: bfloat16` and `bf16: true`. A command naming a
file the repository lacks cannot run as written and gives that parser nothing; recipes that disagree
leave the setting to the default in code, and those that bring precision the others do not are
alternatives named by their file. `HfArgumentParser.parse_yaml_file` / `parse_json_file` read the
file a command gives as its first argument the same way (transformers' examples: `python run_clm.py
recipe.json`, after `if len(sys.argv) == 2 and sys.argv[1].endswith(".json")`).
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from mplint.analysis.console_scripts import console_scripts
from mplint.analysis.frameworks.accelerate_launch import (
    LAUNCH_SUFFIXES,
    MODULE_FLAGS,
    is_script,
    launch_commands,
    launched_names,
    low_precision_config,
    mentions_script,
    names_a_file,
    parsed_once,
    read_text,
    repository_texts,
    scalars,
    started_script,
    substituted_lines,
)
from mplint.repository import repository_of, repository_root

# A command that runs a Python script: an interpreter or a launcher before the script's name.
_LAUNCHER = re.compile(r"(?:^|[\s/=])(?:python[\d.]*|torchrun|deepspeed|launch|srun)\s")
# Words that end a command (a pipe, a list, a redirection).
_ENDS = frozenset({"|", "||", "&&", ";", "&"})
_TRUE_WORDS = frozenset({"true", "yes", "t", "y", "1"})
_FALSE_WORDS = frozenset({"false", "no", "f", "n", "0"})

Written = str | bool  # an option's value as a command writes it; True for a flag given alone


@dataclass(frozen=True)
class LaunchOptions:
    """The options every launch command of a script gives alike (by argparse destination:
    `--learning-rate` is `learning_rate`), and the files read to tell (cache dependencies); the same
    as a parser that reads the `--config` file of each command sees them (`configured`). With the
    commands that give an option of precision the others do not, each as the condition that names
    it and the options it gives. `without_config_file`: some command starts the script and none
    names a `--config` file (a parser that would read one reads nothing but the options).
    `commands`: the options of each command (Hydra composes a config per command)."""

    options: dict[str, Written]
    read: tuple[str, ...]
    alternatives: tuple[tuple[str, LaunchOptions], ...] = ()
    configured: dict[str, Written] = field(default_factory=dict)
    without_config_file: bool = False
    commands: tuple[dict[str, Written], ...] = ()


@dataclass(frozen=True)
class _Command:
    """A command that starts the script: the file it is written in, its options, and those over its
    `--config` file's settings (None when it names a file the repository lacks)."""

    file: str
    options: dict[str, Written]
    configured: dict[str, Written] | None
    config_file: str | None = None


def options_of(script: str, run_root: str) -> LaunchOptions:
    """The options the launch commands of the script at `script` agree on, from its repository."""
    script_path = os.path.abspath(script)
    root = repository_root(script, run_root)
    read: list[str] = []
    given: list[_Command] = []
    for path, text in repository_texts(root):
        if not path.endswith(LAUNCH_SUFFIXES) or not mentions_script(text, script_path):
            continue
        read.append(path)
        for launched, options in _commands(path, text):
            if is_script(launched, script_path, path, root):
                given.extend(_with_config_files(path, options, root, read))
    return _gathered(given, read, root)


def function_options(path: str, function: str, run_root: str) -> LaunchOptions | None:
    """The options the commands that run `function` of the file at `path` with their command line
    as its arguments (a console script's jsonargparse `CLI`: `litgpt finetune_lora --config x.yaml`)
    agree on, over the `--config` file each names, where it stands among them (`console_scripts`);
    None when no console script of its repository runs it."""
    root = repository_root(path, run_root)
    declared = console_scripts(root)
    target = (os.path.abspath(path), function)
    runs = {
        (name, subcommand)
        for name, table in declared.scripts.items()
        for subcommand, ran in table.items()
        if ran == target
    }
    if not runs:
        return None
    read = list(declared.read)
    given: list[_Command] = []
    names = {name for name, _ in runs}
    for file, text in repository_texts(root):
        if not file.endswith(LAUNCH_SUFFIXES) or not any(name in text for name in names):
            continue
        read.append(file)
        for name in names:
            subcommands = declared.scripts[name]
            for subcommand, options in _console_commands(file, text, name, None in subcommands):
                if (name, subcommand) in runs:
                    given.extend(_with_config_files(file, options, root, read, in_order=True))
    return _gathered(given, read, root)


def repository_commands_give(script: str, run_root: str, dests: frozenset[str]) -> tuple[bool, tuple[str, ...]]:
    """Whether a launch command of the repository of `script` gives one of its scripts one of the
    options `dests` (`--deepspeed ds_z3.json`), with the files read to tell. A command that starts
    code from elsewhere (Online-RLHF's README: `torchrun -m axolotl.cli.train ... --deepspeed`) does
    not count."""
    root = repository_root(script, run_root)
    read: list[str] = []
    for path, text in repository_texts(root):
        if not path.endswith(LAUNCH_SUFFIXES) or not any(f"--{dest}" in text for dest in dests):
            continue
        read.append(path)
        for launched, options in _commands(path, text):
            if dests.intersection(options) and _of_the_repository(launched, path, root):
                return True, tuple(read)
    return False, tuple(read)


def _of_the_repository(launched: str, launch_file: str, root: str) -> bool:
    """Whether a command's script (a path, or a module after `-m`) is code of the repository at `root`:
    the path names one of its files, the module's top package (or module) lies at the root or in its `src/`."""
    if launched.endswith(".py"):
        return names_a_file(launched, launch_file, root)
    top = launched.split(".")[0]
    return any(
        os.path.isdir(os.path.join(base, top)) or os.path.isfile(os.path.join(base, f"{top}.py"))
        for base in (root, os.path.join(root, "src"))
    )


def _gathered(given: list[_Command], read: list[str], root: str) -> LaunchOptions:
    """The options `given` commands agree on, with their alternatives."""
    if not given:
        return LaunchOptions({}, tuple(read))
    runnable = [command.configured for command in given if command.configured is not None]
    configured = _agreed(runnable) if runnable else {}
    return LaunchOptions(
        _agreed([command.options for command in given]),
        tuple(read),
        _alternatives(given, configured, root),
        configured,
        without_config_file=all(config_named(command.options) is None for command in given),
        commands=tuple(command.options for command in given),
    )


def _agreed(given: list[dict[str, Written]]) -> dict[str, Written]:
    """The options all of `given` give alike."""
    agreed: dict[str, Written] = {}
    for dest, value in given[0].items():
        found: Written | None = value
        for options in given[1:]:
            found = _alike(found, options.get(dest)) if found is not None else None
        if found is not None:
            agreed[dest] = found
    return agreed


# TRL's flag, read only as `--config path` (`args.index("--config")`), and the keys of its file that
# are no option (`env`: environment variables).
_CONFIG_FLAG = "config"
_NO_OPTION = frozenset({"env"})
# A config file given as the command's first argument (`python run_clm.py recipe.json`, `llamafactory-cli
# train examples/x.yaml`): what `HfArgumentParser.parse_yaml_file(sys.argv[1])` reads. No destination
# starts with it.
POSITIONAL_CONFIG = "\0config"
_CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def config_named(options: Mapping[str, Written]) -> Written | None:
    """The config file a command names: by `--config`, else as its first argument."""
    return options.get(_config_key(options))


def _config_key(options: Mapping[str, Written]) -> str:
    return _CONFIG_FLAG if _CONFIG_FLAG in options else POSITIONAL_CONFIG


# A `--config` path a command writes as a shell pattern (`--config configs/onlinedpo_*`, async_rlhf's
# README) is each of the repository's files it matches, in name order, up to this many.
_MOST_MATCHED_CONFIGS = 16


def _with_config_files(
    path: str, options: dict[str, Written], root: str, read: list[str], *, in_order: bool = False
) -> list[_Command]:
    """A command with its options over those of the `--config` file it names (`_with_config_file`):
    one command per file where it names them with a shell pattern."""
    options = _rooted(path, options, root)
    key = _config_key(options)
    name = options.get(key)
    if not isinstance(name, str) or not any(char in name for char in "*?["):
        return [_with_config_file(path, options, root, read, in_order=in_order)]
    for base in (root, os.path.dirname(path)):
        matched = sorted(glob.glob(os.path.join(base, name)))[:_MOST_MATCHED_CONFIGS]
        if matched:
            return [
                _with_config_file(path, {**options, key: os.path.relpath(file, root)}, root, read, in_order=in_order)
                for file in matched
            ]
    return [_Command(path, options, None)]


def _rooted(path: str, options: dict[str, Written], root: str) -> dict[str, Written]:
    """The options of a command written in the file at `path`, a config file named relative to that
    file's folder (a script run from its own folder: `--deepspeed ../../ds_stage0.json`) named from
    the repository's root instead, so that commands of two folders naming one file agree on it."""
    folder = os.path.dirname(path)
    rooted = dict(options)
    for dest, value in options.items():
        if not isinstance(value, str) or not value.endswith(_CONFIG_SUFFIXES) or os.path.isabs(value):
            continue
        if not os.path.isfile(os.path.join(root, value)) and os.path.isfile(os.path.join(folder, value)):
            rooted[dest] = os.path.relpath(os.path.normpath(os.path.join(folder, value)), root)
    return rooted


def _with_config_file(
    path: str, options: dict[str, Written], root: str, read: list[str], *, in_order: bool = False
) -> _Command:
    """A command with its options over those of the YAML file its `--config` names (or the YAML or
    JSON file it gives as its first argument, `POSITIONAL_CONFIG`; a JSON `--config` is a model's
    config the script reads in code), named from the repository's root (`_rooted`: where commands are
    run from, or from the command's file); a URL of one of the repository's files on GitHub is that file.
    `in_order`: the file's settings stand where `--config` does among the options (jsonargparse: those
    after it win, those before it lose), else the command line wins (TRL)."""
    name = config_named(options)
    suffixes = _CONFIG_SUFFIXES if _config_key(options) == POSITIONAL_CONFIG else (".yaml", ".yml")
    if not isinstance(name, str) or not name.endswith(suffixes):
        return _Command(path, options, options)
    config = os.path.normpath(os.path.join(root, _repository_path(name)))
    text = read_text(config, _LARGEST_CONFIG)
    if text is None:
        return _Command(path, options, None)
    read.append(config)
    settings = {
        key: written
        for key, value in scalars(text).items()
        if (written := _as_written(value)) is not None and key not in _NO_OPTION
    }
    configured = {**settings, **options}
    if in_order:
        configured = {}
        for key, value in options.items():
            configured.update(settings if key in (_CONFIG_FLAG, POSITIONAL_CONFIG) else {key: value})
    return _Command(path, options, configured, os.path.relpath(config, root))


def _as_written(value: object) -> str | None:
    """A config file's scalar as a command line writes it: YAML's as written, JSON's `true` and `1e-5`
    spelled out; None for a list or a mapping."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


# A file of a repository on GitHub: raw (`raw.githubusercontent.com/OWNER/REPO/REF/PATH`) or as a page
# (`github.com/OWNER/REPO/blob/REF/PATH`).
_GITHUB_FILE = re.compile(
    r"https?://(?:raw\.githubusercontent\.com/[^/]+/[^/]+/[^/]+|github\.com/[^/]+/[^/]+/(?:blob|raw)/[^/]+)/(.+)"
)


def _repository_path(name: str) -> str:
    """The path in its repository of a file a URL on GitHub names (the URL's own repository is not
    told apart: a file of that path must be in the linted one), else `name`."""
    found = _GITHUB_FILE.fullmatch(name)
    return found.group(1) if found else name


# Each alternative is the whole unit analysed once more: past three, the commands are a sweep of
# configurations (sizes, precisions), and the first three met, in the order the repository is read,
# stand for the rest at a bounded cost.
MOST_ALTERNATIVES = 3
# What an option of precision mentions, in its name or value (as the plan's trigger words:
# `--bf16`, `--torch_dtype bfloat16`, `--deepspeed zero3.json`, `--mixed_precision fp16`).
_PRECISION_WORDS = ("bf16", "fp16", "float16", "half", "dtype", "precision", "deepspeed", "fsdp", "autocast")


def _alternatives(
    given: list[_Command], agreed: Mapping[str, Written], root: str
) -> tuple[tuple[str, LaunchOptions], ...]:
    """The commands that give options of precision not all commands agree on (read over their config
    files), one per distinct set of those (a command differing from another only in `--output_dir`
    is the same configuration), each named by its config file where that brings the difference, else
    by its launch file."""
    found: dict[str, LaunchOptions] = {}
    seen: set[frozenset[tuple[str, Written]]] = set()
    for command in given:
        configured = command.configured if command.configured is not None else command.options
        differing = {
            dest: _read_as(value)
            for dest, value in configured.items()
            if dest not in agreed and _of_precision(dest, value)
        }
        if command.config_file is not None and not differing.keys() <= command.options.keys():
            condition = f"launched with `--config {command.config_file}`"
        else:
            condition = f"launched as in `{os.path.relpath(command.file, root)}`"
        if differing and frozenset(differing.items()) not in seen and condition not in found:
            seen.add(frozenset(differing.items()))
            found[condition] = LaunchOptions(
                command.options,
                (),
                configured=configured,
                without_config_file=config_named(command.options) is None,
                commands=(command.options,),
            )
        if len(found) == MOST_ALTERNATIVES:
            break
    return tuple(found.items())


# What a choice of low precision mentions (`pure_bf16`, `fp16`, `bfloat16`), and the spellings of one
# dtype read alike (`amp_bfloat16` is `amp_bf16`).
_LOW_PRECISION_WORDS = ("bf16", "fp16", "half")
_SPELLINGS = (("bfloat16", "bf16"), ("float16", "fp16"))


def choice_alternatives(
    flag: str, dest: str, default: object, choices: tuple[object, ...], launched: LaunchOptions
) -> tuple[tuple[str, LaunchOptions], ...]:
    """The configurations an option of precision with a literal list of `choices` (argparse's
    `choices=[...]`) is documented to run besides its `default`: each choice of low precision other
    than the default's (`--precision pure_bf16`), over the options the launch commands agree on
    (`launched`), named by the command line that gives it; at most `MOST_ALTERNATIVES`, in the order
    the choices are listed."""
    found: list[tuple[str, LaunchOptions]] = []
    if not _names_precision(dest):
        return ()  # `--opt` with a `lion_fp16_state` among its optimizers
    for choice in choices:
        written = str(choice)
        spelled = _spelled(written)
        if spelled == _spelled(str(default)) or not any(word in spelled for word in _LOW_PRECISION_WORDS):
            continue
        given = {dest: written}
        options = LaunchOptions(
            {**launched.options, **given},
            (),
            configured={**launched.configured, **given},
            without_config_file=launched.without_config_file,
        )
        found.append((f"`{flag} {written}` is given", options))
        if len(found) == MOST_ALTERNATIVES:
            break
    return tuple(found)


def _spelled(written: str) -> str:
    """A choice with one spelling per dtype, lower case."""
    word = written.lower()
    for spelling, short in _SPELLINGS:
        word = word.replace(spelling, short)
    return word


def _of_precision(dest: str, value: Written) -> bool:
    """Whether an option may bring low precision: one turned off (`--bf16 false`) only keeps it
    away, as the default in code mostly does, and a run under it would add no finding."""
    if _truth(value) is False:
        return False
    return _names_precision(dest) or any(word in str(value).lower() for word in _PRECISION_WORDS)


def _names_precision(dest: str) -> bool:
    """Whether an option's name is one of precision (`precision`, `torch_dtype`, `bf16`, `use_amp`)."""
    return any(word in dest.lower() for word in _PRECISION_WORDS) or "amp" in dest.lower().split("_")


def _read_as(written: Written) -> Written:
    """A value as the script reads it where that is a boolean (`--bf16` and `--bf16 true` alike)."""
    truth = _truth(written)
    return written if truth is None else truth


def _alike(first: Written, second: Written | None) -> Written | None:
    """The value two commands give an option alike, None where they differ. A flag given alone
    (`--bf16`) and a word that reads as true (`--bf16 true`, `True`, `1`) are one value for a
    boolean option (HfArgumentParser's `bool` fields take both), and so are two false words: the
    value is then the flag's (True) or "false"; any other two values alike only written alike."""
    if second is None:
        return None
    if first == second:
        return first
    truth = _truth(first)
    return (True if truth else "false") if truth is not None and truth is _truth(second) else None


def _truth(written: Written) -> bool | None:
    """What a boolean option reads a value as: True, False, or None (not a boolean word)."""
    if written is True:
        return True
    word = str(written).lower()
    return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else None


def outside_code(run_root: str, scripts: Mapping[str, str], words: frozenset[str]) -> tuple[set[str], tuple[str, ...]]:
    """Of `scripts` (absolute path -> code) of a run started at `run_root`, those whose low precision
    may come from outside their code: a launch command under the run's folder gives them an option
    that mentions one of `words` (`--bf16 True`), or they name a config file that does (`dtype:
    bfloat16`). With the files read to tell (what a cached run depends on)."""
    launched, read = _launched_with(os.path.abspath(run_root or "."), scripts, words)
    configured, config_read = _configured_with(
        run_root, {path: scripts[path] for path in scripts if path not in launched}, words
    )
    return launched | configured, read + config_read


def _launched_with(run_root: str, scripts: Iterable[str], words: frozenset[str]) -> tuple[set[str], tuple[str, ...]]:
    # Per repository (not the run's root: a run whose Python all lies in `training/` has its launch
    # scripts beside that folder), the scripts by name.
    by_repository: dict[str, dict[str, list[str]]] = {}
    for script in scripts:
        by_name = by_repository.setdefault(repository_of(script, run_root), {})
        by_name.setdefault(os.path.basename(script), []).append(script)
    found: set[str] = set()
    read: list[str] = []
    for root, by_name in by_repository.items():
        for path, text in repository_texts(root):
            if not path.endswith(LAUNCH_SUFFIXES) or (".py" not in text and not any(f in text for f in MODULE_FLAGS)):
                continue
            read.append(path)
            for launched, options in _commands(path, text):
                for command in _with_config_files(path, options, root, read):  # `--config x.yaml`'s settings too
                    given = command.configured if command.configured is not None else options
                    written = " ".join(f"{name} {value}" for name, value in given.items())
                    if any(word in written for word in words):
                        found.update(_scripts_named(launched, path, by_name, root))
            for accelerate_command in launch_commands(path, text):
                # `accelerate launch --config_file zero3.yaml train.py`: the launcher's mixed precision.
                started = accelerate_command.script
                if started is None or not any(by_name.get(name) for name in launched_names(started)):
                    continue
                low, config_read = low_precision_config(accelerate_command, root)
                read.extend(config_read)
                if low:
                    found.update(_scripts_named(started, path, by_name, root))
    return found, tuple(read)


def _scripts_named(launched: str, launch_file: str, by_name: Mapping[str, list[str]], root: str) -> Iterator[str]:
    """The analysed scripts a command of `launch_file` that starts `launched` runs."""
    for name in launched_names(launched):
        for script in by_name.get(name, ()):
            if is_script(launched, script, launch_file, root):
                yield script


# A config file a script names in a string literal (`"configs/grpo.yaml"`, `default="ds_config.json"`),
# and the folder of configs Hydra composes from (`@hydra.main(config_path="config", ...)`, or given first).
_CONFIG_NAME = re.compile(r"""["']([\w./-]+\.(?:ya?ml|json))["']""")
_CONFIG_FOLDER = re.compile(r"""(?:\bconfig_path\s*=\s*|\bhydra\.main\(\s*)["']([\w./-]+)["']""")
_LARGEST_CONFIG = 64 * 1024
# A config folder is read up to this many files (Hydra's groups hold a few dozen).
_MOST_FOLDER_CONFIGS = 256


def _configured_with(
    run_root: str, scripts: Mapping[str, str], words: frozenset[str]
) -> tuple[set[str], tuple[str, ...]]:
    found: set[str] = set()
    read: set[str] = set()
    for script, code in scripts.items():
        names = [
            os.path.normpath(os.path.join(base, name))
            for name in set(_CONFIG_NAME.findall(code))
            for base in (os.path.dirname(script), repository_of(script, os.path.abspath(run_root or ".")))
        ]
        for folder in set(_CONFIG_FOLDER.findall(code)):
            names.extend(_folder_configs(os.path.join(os.path.dirname(script), folder)))
        for path in names:
            text = read_text(path, _LARGEST_CONFIG)
            if text is None:
                continue
            read.add(path)
            if any(word in text for word in words):
                found.add(script)
    return found, tuple(sorted(read))


def _folder_configs(folder: str) -> list[str]:
    """The YAML files under a folder of configs, its groups' folders included (at most
    `_MOST_FOLDER_CONFIGS`, in a stable order)."""
    found: list[str] = []
    for parent, folders, files in os.walk(folder):
        folders.sort()
        found.extend(os.path.join(parent, name) for name in sorted(files) if name.endswith((".yaml", ".yml")))
        if len(found) >= _MOST_FOLDER_CONFIGS:
            break
    return found[:_MOST_FOLDER_CONFIGS]


def typed(written: Written, default: object) -> object | None:
    """An option's value as the script reads it, typed like its default in code (`--bf16 True` for a
    bool, `--lr 1e-5` for a float); None when it cannot be told (the default in code then stands)."""
    if isinstance(default, bool):
        return _truth(written)
    if written is True:
        return None
    try:
        if isinstance(default, int):
            return int(written)
        if isinstance(default, float):
            return float(written)
    except ValueError:
        return None
    return written if isinstance(default, str) or default is None else None


# The Python scripts the commands of each launch file start, with the options given them.
_COMMANDS: dict[str, tuple[str, list[tuple[str, dict[str, Written]]]]] = {}


def _commands(path: str, text: str) -> list[tuple[str, dict[str, Written]]]:
    return parsed_once(_COMMANDS, path, text, _read_commands)


# The commands of each launch file that start a console script, by (file, script name): the
# subcommand each gives (None for a script of a single function) and its options.
_CONSOLE_COMMANDS: dict[str, tuple[str, list[tuple[str | None, dict[str, Written]]]]] = {}
# Words a README writes before a command: a prompt, a notebook's shell escape.
_PROMPTS = frozenset({"$", "!", "%"})


def _console_commands(path: str, text: str, script: str, single: bool) -> list[tuple[str | None, dict[str, Written]]]:
    """The commands of the launch file at `path` that start the console script `script` (its first
    word, after a prompt or variables assigned for it: `$ litgpt finetune_lora --precision x`), each
    with its subcommand (the word after the script's, for a script that has them) and options."""

    def read(text: str) -> list[tuple[str | None, dict[str, Written]]]:
        found: list[tuple[str | None, dict[str, Written]]] = []
        for line in substituted_lines(text):
            if script not in line:
                continue
            try:
                words = shlex.split(line, comments=True)
            except ValueError:  # an unbalanced quote: not a command to read
                continue
            start = next((index for index, word in enumerate(words) if word not in _PROMPTS and "=" not in word), None)
            if start is None or words[start] != script:
                continue
            rest = words[start + 1 :]
            if single:
                found.append((None, _options(rest)))
            elif rest and not rest[0].startswith("-"):
                found.append((rest[0], _options(rest[1:])))
        return found

    return parsed_once(_CONSOLE_COMMANDS, f"{path}\0{script}\0{single}", text, read)


def _read_commands(text: str) -> list[tuple[str, dict[str, Written]]]:
    found = []
    for line in substituted_lines(text):
        if _LAUNCHER.search(line) is None or (".py" not in line and not any(flag in line for flag in MODULE_FLAGS)):
            continue
        started = started_script(line)
        if started is not None:
            words, start = started
            found.append((words[start], _options(words[start + 1 :])))
    return found


# The key of a Hydra override among a command's options (`model=llama` is `OVERRIDE + "model"`): no
# argparse destination starts with it.
OVERRIDE = "="
_HYDRA_OVERRIDE = re.compile(r"\+{0,2}([A-Za-z_][\w.@/-]*)=(.+)")


def _options(words: list[str]) -> dict[str, Written]:
    """`--name value`, `--name=value` and a bare `--flag`, up to the end of the command (a flag
    before `> train.log` or `| tee` is given alone); and Hydra's overrides (`loss=dpo`,
    `++model.policy_dtype=float32`)."""
    options: dict[str, Written] = {}
    command = list(itertools.takewhile(lambda word: not _ends_command(word), words))
    if command and command[0].endswith(_CONFIG_SUFFIXES) and not command[0].startswith("-") and "$" not in command[0]:
        options[POSITIONAL_CONFIG] = command[0]
    for index, word in enumerate(command):
        override = _HYDRA_OVERRIDE.fullmatch(word) if "$" not in word else None
        if override is not None:
            options[OVERRIDE + override.group(1)] = override.group(2)
        if not word.startswith("--") or "$" in word:
            continue
        name, equals, value = word[2:].partition("=")
        following = command[index + 1] if index + 1 < len(command) else None
        if equals:
            written: Written = value
        elif following is not None and not following.startswith("--"):
            written = following
        else:
            written = True
        if "$" not in str(written):
            options[name.replace("-", "_")] = written
    return options


def _ends_command(word: str) -> bool:
    """Whether a word ends a command's options: a pipe, a list, a redirection (`> train.log`, `2>&1`)."""
    return word in _ENDS or word.startswith((">", "2>"))
