"""The version of a package a repository pins, read from the files at its root that name its
dependencies: `requirements*.txt` (LESS's `requirement.txt` too), `setup.py` (the strings of
`install_requires`), `pyproject.toml` (PEP 621 `dependencies` strings; Poetry's `package = "X"`),
`environment.yml` (its `pip:` list and conda's `package=X`).

Only a pin says which version runs: `==X` (conda's `=X`), or the newest a `<=X` or `~=X` allows.
A range without an upper bound, or no pin, is the newest version (None), as are files that pin
different versions.
"""

from __future__ import annotations

import os
import re

from mplint.analysis.frameworks.accelerate_launch import parsed_once, read_text

# A version as numbers (`4.31.0` -> (4, 31, 0)); `ANY_RELEASE` stands for a wildcard or for the
# newest release `~=` allows (`==4.31.*`, `~=4.31.0` -> (4, 31, ANY_RELEASE)).
Version = tuple[int, ...]
ANY_RELEASE = 1 << 30
_DEPENDENCY_FILES = re.compile(r"requirements?.*\.txt|setup\.py|pyproject\.toml|environment.*\.ya?ml")
_LARGEST_FILE = 64 * 1024
# One comparison of a requirement's specifier (`==4.31.0`, `<= 4.29.2`, conda's `=4.26.1`).
_CLAUSE = re.compile(r"\s*(===|==|~=|<=|>=|!=|<|>|=)\s*([\w.*+!-]+)\s*,?")


def pinned_version(package: str, root: str) -> tuple[Version | None, tuple[str, ...]]:
    """The version of `package` the repository at `root` runs (None: the newest), and the files read."""
    read: list[str] = []
    pins: set[Version] = set()
    try:
        names = sorted(name for name in os.listdir(root) if _DEPENDENCY_FILES.fullmatch(name))
    except OSError:
        return None, ()
    for name in names:
        path = os.path.join(root, name)
        text = read_text(path, _LARGEST_FILE)
        if text is None:
            continue
        read.append(path)
        found: frozenset[Version] = parsed_once(_PINS, f"{path}\0{package}", text, lambda text: _pins_in(package, text))
        pins.update(found)
    return (pins.pop() if len(pins) == 1 else None), tuple(read)


_PINS: dict[str, tuple[str, frozenset[Version]]] = {}


def _pins_in(package: str, text: str) -> frozenset[Version]:
    """The versions each requirement of `package` in a dependency file's text pins (`transformers==4.31.0`,
    `"transformers[torch]>=4.26,<=4.29.2"`, `transformers = "4.33.2"`); requirements without a pin add none."""
    requirement = re.compile(
        rf"""(?<![\w.-]){re.escape(package)}(?:\[[^\]]*\])?(?![\w.-])\s*(?:=\s*["'](?P<poetry>[\w.]+)["']|(?P<specifier>.*))"""
    )
    found: set[Version] = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for match in requirement.finditer(line):
            poetry = match.group("poetry")
            version = _version(poetry) if poetry else _pinned(match.group("specifier"))
            if version is not None:
                found.add(version)
    return frozenset(found)


def _pinned(specifier: str) -> Version | None:
    """The version a specifier (`==4.31.0`, `>=4.26.0,<=4.29.2`, `~=4.31.0`) makes pip install, when
    it pins one; None for a range without an upper bound."""
    clauses: dict[str, str] = {}
    position = 0
    while (clause := _CLAUSE.match(specifier, position)) is not None:
        clauses.setdefault(clause.group(1), clause.group(2))
        position = clause.end()
    for operator in ("===", "==", "="):
        if operator in clauses:
            return _version(clauses[operator])
    if "<=" in clauses:
        return _version(clauses["<="])
    if "~=" in clauses:  # `~=4.31.0`: the newest 4.31 release; `~=4.31`: the newest 4.x
        written = clauses["~="].split(".")
        return _version(".".join([*written[:-1], "*"])) if len(written) > 1 else None
    return None


def _version(text: str) -> Version | None:
    """`4.31.0` -> (4, 31, 0), `4.31` -> (4, 31, 0), `4.31.*` -> (4, 31, ANY_RELEASE); a pre-release
    counts as its release."""
    numbers: list[int] = []
    for part in text.split("."):
        if part == "*":
            numbers.append(ANY_RELEASE)
            break
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() < len(part):
            break  # `0rc1`, `0.dev0`: the release it leads to
    return (*numbers, *[0] * (3 - len(numbers))) if numbers else None
