"""Settings from `[tool.mplint]`: found, validated, and asked which codes apply where.

Configuration lives in the nearest `pyproject.toml` (walking up from the first path) that has
a `[tool.mplint]` table, or in the file given with `--config`: a `pyproject.toml` is read
from its `[tool.mplint]` table, any other TOML file holds the same keys at its top level.
Every problem is raised as a one-line `ConfigError`.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import reprlib
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mplint.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

ALL = "ALL"

# Replaced by `exclude`, extended by `extend-exclude` (ruff's semantics). Virtualenvs are also
# recognised by their `pyvenv.cfg`, whatever their name (see discovery).
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".hg",
    ".mplint_cache",
    ".nox",
    ".tox",
    ".venv",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "node_modules",
    "venv",
)

# Test code is no training run: tests build half models, optimizers over them and fp16 regions on
# purpose (to check kernels, compilation, checkpoints), and the rules about what a training run
# computes (MP001-MP006) report nothing there by default. Replaced by `per-file-ignores`, extended by
# `extend-per-file-ignores` (ruff's semantics, as `exclude`).
TEST_FILES: tuple[str, ...] = ("tests", "test", "test_*.py", "*_test.py", "conftest.py")
TRAINING_RUN_CODES: tuple[str, ...] = ("MP001", "MP002", "MP003", "MP004", "MP005", "MP006")
DEFAULT_PER_FILE_IGNORES: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (pattern, TRAINING_RUN_CODES) for pattern in TEST_FILES
)

_KEYS = ("select", "ignore", "exclude", "extend-exclude", "per-file-ignores", "extend-per-file-ignores")


@dataclass(frozen=True)
class RuleSelection:
    """One layer of `select`/`ignore`: the config file's, then the command line's (as in ruff).

    A layer with `select` decides afresh, the more specific of its matching `select` and
    `ignore` prefixes winning (a tie goes to `ignore`); a layer with only `ignore` turns
    codes off on top of what the layers before it decided.
    """

    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()

    def apply(self, code: str, enabled_before: bool) -> bool:
        ignored = _specificity(code, self.ignore)
        if self.select is None:
            return enabled_before and ignored < 0
        return _specificity(code, self.select) > ignored


@dataclass(frozen=True)
class Settings:
    # Where globs in `exclude` and `per-file-ignores` are anchored: the config file's
    # directory, or the working directory when there is no config.
    root: Path
    selections: tuple[RuleSelection, ...] = (RuleSelection(select=(ALL,)),)
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_PER_FILE_IGNORES
    config_file: Path | None = None

    def is_selected(self, code: str) -> bool:
        """Whether `code` runs at all (before `per-file-ignores`)."""
        enabled = False
        for selection in self.selections:
            enabled = selection.apply(code, enabled)
        return enabled

    def is_enabled(self, code: str, path: str) -> bool:
        """Whether a finding with `code` in the file at `path` is reported."""
        if not self.is_selected(code):
            return False
        relative = self.relative_path(path)
        return not any(
            _specificity(code, codes) >= 0
            for pattern, codes in self.per_file_ignores
            if glob_matches(pattern, relative)
        )

    def is_excluded(self, path: str | os.PathLike[str]) -> bool:
        # One regex for all patterns: a walk asks this of every file and directory.
        return _any_glob((*self.exclude, *self.extend_exclude)).fullmatch(self.relative_path(path)) is not None

    def relative_path(self, path: str | os.PathLike[str]) -> str:
        return _relative_posix(os.path.abspath(path), str(self.root))

    def with_selection(
        self,
        select: Iterable[str] | None,
        ignore: Iterable[str] | None,
        known_codes: Collection[str],
    ) -> Settings:
        """These settings with a command-line `select`/`ignore` layered on top."""
        if select is None and not ignore:
            return self
        layer = RuleSelection(
            select=None if select is None else _checked_codes(select, known_codes, "--select:"),
            ignore=_checked_codes(ignore or (), known_codes, "--ignore:"),
        )
        return replace(self, selections=(*self.selections, layer))


def load_settings(
    start: str | os.PathLike[str] | None = None,
    *,
    config_file: str | os.PathLike[str] | None = None,
    known_codes: Collection[str],
) -> Settings:
    """Settings from `config_file`, else from the nearest configured pyproject.toml upwards."""
    if config_file is not None:
        path = Path(os.path.abspath(config_file))
        if not path.is_file():
            raise ConfigError(f"config file '{config_file}' not found")
        data = _read_toml(path)
        if path.name == "pyproject.toml":
            table = _tool_table(data) or {}
            where = f"{display_path(path)}: [tool.mplint]"
        else:
            table, where = data, f"{display_path(path)}:"
        return _settings_from_table(table, path, where, known_codes)

    directory = Path(os.path.abspath(start if start is not None else os.curdir))
    if not directory.is_dir():
        directory = directory.parent
    for candidate in (directory, *directory.parents):
        path = candidate / "pyproject.toml"
        if path.is_file():
            table = _tool_table(_read_toml(path))
            if table is not None:
                where = f"{display_path(path)}: [tool.mplint]"
                return _settings_from_table(table, path, where, known_codes)
    return Settings(root=Path(os.path.abspath(os.curdir)))


def display_path(path: str | os.PathLike[str]) -> str:
    """`path` as mplint prints it: posix, relative to the working directory when under it."""
    return _relative_posix(os.path.abspath(path), os.getcwd())


def _relative_posix(absolute: str, base: str) -> str:
    """`absolute` relative to the directory `base` when under it (`.` for `base` itself), posix;
    string operations, as `Path.relative_to` gives them but without its cost on every file."""
    if absolute == base:
        relative = "."
    elif absolute.startswith(base.rstrip(os.sep) + os.sep):
        relative = absolute[len(base.rstrip(os.sep)) + 1 :]
    else:
        relative = absolute
    return relative.replace(os.sep, "/")


def glob_matches(pattern: str, relative_path: str) -> bool:
    """gitignore-style matching of a posix path relative to the config root.

    A pattern without an inner `/` matches a name at any depth (`build`, `*.egg-info`); one
    with a `/` is anchored at the root (`src/legacy/*.py`); `**` spans directories; matching
    a directory covers everything below it.
    """
    return _glob_regex(pattern).fullmatch(relative_path) is not None


@functools.cache
def _any_glob(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """A regex matching what any of `patterns` matches (none: nothing)."""
    return re.compile("|".join(f"(?:{_glob_regex(pattern).pattern})" for pattern in patterns) or "(?!)", re.DOTALL)


@functools.cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    stripped = pattern.strip().rstrip("/")
    anchored = "/" in stripped
    parts = stripped.lstrip("/").split("/")
    pieces = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            pieces.append(".*" if last else "(?:[^/]+/)*")
        else:
            pieces.append(_translate_segment(part) + ("" if last else "/"))
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(prefix + "".join(pieces) + "(?:/.*)?", re.DOTALL)


def _translate_segment(segment: str) -> str:
    """One path segment of a glob as a regex: `*` and `?` never cross a `/`."""
    out = []
    index = 0
    while index < len(segment):
        char = segment[index]
        index += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in segment[index + 1 :]:
            end = segment.index("]", index + 1)
            body = segment[index:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            index = end + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


def _specificity(code: str, prefixes: Iterable[str]) -> int:
    """Length of the longest prefix matching `code` (`ALL` counts as 0), or -1 if none does."""
    return max(
        (0 if prefix == ALL else len(prefix) for prefix in prefixes if prefix == ALL or code.startswith(prefix)),
        default=-1,
    )


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{display_path(path)}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{display_path(path)}: invalid TOML: {error}") from None
    except UnicodeDecodeError as error:  # TOML is UTF-8; tomllib lets the decode error through
        byte = error.object[error.start]
        raise ConfigError(
            f"{display_path(path)}: invalid TOML: not valid UTF-8 (byte 0x{byte:02x} at offset {error.start})"
        ) from None


def _tool_table(data: Mapping[str, Any]) -> Any | None:
    tool = data.get("tool")
    return tool.get("mplint") if isinstance(tool, dict) else None


def _settings_from_table(table: Any, path: Path, where: str, known_codes: Collection[str]) -> Settings:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table of settings")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{where} unknown key '{key}'{_did_you_mean(key, _KEYS)}")

    select = table.get("select")
    root = path.parent
    return Settings(
        root=root,
        selections=(
            *Settings(root=root).selections,
            RuleSelection(
                select=None if select is None else _codes(select, "select", where, known_codes),
                ignore=_codes(table.get("ignore", []), "ignore", where, known_codes),
            ),
        ),
        exclude=_strings(table.get("exclude", DEFAULT_EXCLUDE), "exclude", where),
        extend_exclude=_strings(table.get("extend-exclude", []), "extend-exclude", where),
        per_file_ignores=(
            *(
                _per_file_ignores(table["per-file-ignores"], "per-file-ignores", where, known_codes)
                if "per-file-ignores" in table
                else DEFAULT_PER_FILE_IGNORES
            ),
            *_per_file_ignores(table.get("extend-per-file-ignores", {}), "extend-per-file-ignores", where, known_codes),
        ),
        config_file=path,
    )


def _per_file_ignores(
    value: Any, key: str, where: str, known_codes: Collection[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} '{key}' must be a table of glob = [codes], got {_type_name(value)}")
    return tuple((pattern, _codes(codes, f'{key}."{pattern}"', where, known_codes)) for pattern, codes in value.items())


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where} '{key}' must be a list of strings, got {_type_name(value)}")
    return tuple(value)


def _codes(value: Any, key: str, where: str, known_codes: Collection[str]) -> tuple[str, ...]:
    return _checked_codes(_strings(value, key, where), known_codes, f"{where} {key}:")


def _checked_codes(codes: Iterable[str], known_codes: Collection[str], where: str) -> tuple[str, ...]:
    """`codes` upper-cased, each an existing code, a prefix of one, or `ALL`."""
    checked = []
    for code in codes:
        normalized = code.strip().upper()
        if not _is_known(normalized, known_codes):
            suggestion = _did_you_mean(normalized, sorted(known_codes))
            raise ConfigError(f"{where} unknown rule code or prefix '{code}'{suggestion}")
        checked.append(normalized)
    return tuple(checked)


def _is_known(code: str, known_codes: Collection[str]) -> bool:
    return code == ALL or (code != "" and any(known.startswith(code) for known in known_codes))


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    matches = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _type_name(value: Any) -> str:
    return f"{type(value).__name__} {reprlib.repr(value)}"
