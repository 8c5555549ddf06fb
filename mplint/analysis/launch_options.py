"""The configuration a repository gives a script outside its code: the options its launch commands
give it, and (for the plan) the config files it names.

A training script is seldom started plainly: `scripts/train.sh` runs `torchrun train.py --bf16 True
--deepspeed ds_z3.json`. Where every command of the repository that starts the script (a shell
script, a README, a Slurm file) gives an option the same value, that value is the option's default
here (argparse's `add_argument`, a field of an `HfArgumentParser` dataclass). An option the commands
disagree on, or that one of them leaves out, keeps the default written in code; a repository with no
command for the script changes nothing. Commands are read as `accelerate_launch` reads `accelerate
launch` lines: continuation lines joined, shell variables assigned a literal substituted.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from mplint.analysis.frameworks.accelerate_launch import (
    LAUNCH_SUFFIXES,
    is_script,
    repository_of,
    repository_texts,
    substituted_lines,
)

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
    `--learning-rate` is `learning_rate`), and the files read to tell (cache dependencies)."""

    options: dict[str, Written]
    read: tuple[str, ...]


def options_of(script: str, run_root: str) -> LaunchOptions:
    """The options the launch commands of the script at `script` agree on, from its repository."""
    script_path = os.path.abspath(script)
    root = repository_of(script_path, os.path.abspath(run_root or "."))
    name = os.path.basename(script_path)
    read: list[str] = []
    given: list[dict[str, Written]] = []
    for path, text in repository_texts(root):
        if not path.endswith(LAUNCH_SUFFIXES) or name not in text:
            continue
        read.append(path)
        for launched, options in _commands(text):
            if is_script(launched, script_path, path, root):
                given.append(options)
    if not given:
        return LaunchOptions({}, tuple(read))
    agreed = {
        dest: value
        for dest, value in given[0].items()
        if all(dest in options and options[dest] == value for options in given[1:])
    }
    return LaunchOptions(agreed, tuple(read))


def launched_with(run_root: str, scripts: Iterable[str], words: frozenset[str]) -> tuple[set[str], tuple[str, ...]]:
    """Of `scripts` (files of a run started at `run_root`), those a launch command under the run's
    folder gives an option that mentions one of `words` (`--bf16 True`, `--torch_dtype bfloat16`):
    low precision may come from the command, not the code. With the files read to tell."""
    by_name: dict[str, list[str]] = {}
    for script in scripts:
        by_name.setdefault(os.path.basename(script), []).append(os.path.abspath(script))
    found: set[str] = set()
    read: list[str] = []
    root = os.path.abspath(run_root or ".")
    for path, text in repository_texts(root):
        if not path.endswith(LAUNCH_SUFFIXES) or ".py" not in text:
            continue
        read.append(path)
        for launched, options in _commands(text):
            written = " ".join(f"{name} {value}" for name, value in options.items())
            if not any(word in written for word in words):
                continue
            for script in by_name.get(os.path.basename(launched), ()):
                if is_script(launched, script, path, repository_of(script, root)):
                    found.add(script)
    return found, tuple(read)


# A config file a script names in a string literal (`"configs/grpo.yaml"`, `default="ds_config.json"`).
_CONFIG_NAME = re.compile(r"""["']([\w./-]+\.(?:ya?ml|json))["']""")
_LARGEST_CONFIG = 64 * 1024


def configured_with(run_root: str, scripts: dict[str, str], words: frozenset[str]) -> tuple[set[str], tuple[str, ...]]:
    """Of `scripts` (path -> code), those that name a config file of the repository (relative to the
    script or to the run's folder) whose text mentions one of `words` (`dtype: bfloat16`): low
    precision may come from the file the script reads. With the files read to tell."""
    found: set[str] = set()
    read: list[str] = []
    for script, code in scripts.items():
        for name in set(_CONFIG_NAME.findall(code)):
            for base in (os.path.dirname(script), run_root or "."):
                path = os.path.normpath(os.path.join(base, name))
                try:
                    if os.path.getsize(path) > _LARGEST_CONFIG:
                        continue
                    with open(path, encoding="utf-8") as file:
                        text = file.read()
                except (OSError, UnicodeDecodeError):
                    continue
                read.append(path)
                if any(word in text for word in words):
                    found.add(script)
    return found, tuple(sorted(set(read)))


def typed(written: Written, default: object) -> object | None:
    """An option's value as the script reads it, typed like its default in code (`--bf16 True` for a
    bool, `--lr 1e-5` for a float); None when it cannot be told (the default in code then stands)."""
    if isinstance(default, bool):
        if written is True:
            return True
        word = str(written).lower()
        return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else None
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


def _commands(text: str) -> list[tuple[str, dict[str, Written]]]:
    """The Python scripts the commands of a file start, each with the options it gives them."""
    found = []
    for line in substituted_lines(text):
        if _LAUNCHER.search(line) is None or ".py" not in line:
            continue
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote: not a command to read
            continue
        start = next((index for index, word in enumerate(words) if word.endswith(".py") and "$" not in word), None)
        if start is not None and not words[start].startswith("-"):
            found.append((words[start], _options(words[start + 1 :])))
    return found


def _options(words: list[str]) -> dict[str, Written]:
    """`--name value`, `--name=value` and a bare `--flag`, up to the end of the command."""
    options: dict[str, Written] = {}
    for index, word in enumerate(words):
        if word in _ENDS or word.startswith((">", "2>")):
            break
        if not word.startswith("--") or "$" in word:
            continue
        name, equals, value = word[2:].partition("=")
        following = words[index + 1] if index + 1 < len(words) else None
        if equals:
            written: Written = value
        elif following is not None and not following.startswith("--") and following not in _ENDS:
            written = following
        else:
            written = True
        if "$" not in str(written):
            options[name.replace("-", "_")] = written
    return options
