"""Which file of the run a dotted module name (`utils.logprobs`, `.helpers`) refers to, and which
names the files import from each other."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping

from mplint.repository import repository_root


class ModuleIndex:
    """Maps every dotted suffix of each file's module path to the file, so that `import utils.x`
    resolves whether the run was started at the repository root or inside `src/`."""

    def __init__(self, paths: list[str], text_of: Callable[[str], str | None] | None = None) -> None:
        self._text_of = text_of
        self._by_name: dict[str, list[str]] = {}
        self._original: dict[str, str] = {}
        for path in paths:
            normal = posixpath.normpath(path) if "//" in path or "/./" in path or path.startswith("./") else path
            self._original[normal] = path
            for name in _dotted_suffixes(normal):
                self._by_name.setdefault(name, []).append(normal)
        # Test code is told by the folders below the run's root: `/home/me/tests/repo` is not a test.
        try:
            root = posixpath.commonpath(list(self._original))
        except ValueError:  # no paths, or absolute and relative ones mixed
            root = ""
        if len(self._original) == 1:
            root = posixpath.dirname(root)
        # The folder the run was started on (its files' common folder; "" for the working directory).
        self.root = root
        self._repositories: dict[str, str] = {}  # by folder: `repository_root` reads the disk
        self._tests = {
            path for normal, path in self._original.items() if is_test_path(posixpath.relpath(normal, root or "."))
        }

    def text(self, path: str) -> str | None:
        """The text of the file of the run at `path`, where the run was given it (and could read it)."""
        return self._text_of(path) if self._text_of is not None else None

    def texts_under(self, folder: str) -> Iterator[tuple[str, str]]:
        """The files of the run below `folder` (an absolute path) with their texts, where the run
        was given them."""
        prefix = os.path.join(folder, "")
        for path in self._original.values():
            if os.path.abspath(path).startswith(prefix):
                text = self.text(path)
                if text is not None:
                    yield path, text

    def is_test(self, path: str) -> bool:
        """Whether the file at `path` is test code (see `is_test_path`)."""
        return path in self._tests

    def resolve(self, name: str, importer: str, level: int = 0) -> str | None:
        """The file for module `name` imported from `importer` (with `level` leading dots), if unique."""
        if level:
            # String operations, as PurePosixPath would give them: the prefilter resolves every
            # import of every file of a run.
            base = posixpath.dirname(importer) or "."
            for _ in range(level - 1):
                base = (posixpath.dirname(base) or ".") if base not in (".", "/") else base
            target = posixpath.join(base, *name.split(".")) if name else base
            target = target[2:] if target.startswith("./") else target
            for candidate in (f"{target}.py", f"{target}/__init__.py"):
                if candidate in self._original:
                    return self._original[candidate]
            return None
        matches = self._by_name.get(name, [])
        if len(matches) > 1:
            # Prefer the candidate next to the importer (a script importing its sibling module),
            # else the one sharing most folders with it: in a run over several repositories,
            # `src.utils` imported from `repo-a/src/models/x.py` is repo-a's own.
            importer_dir = posixpath.dirname(importer)
            siblings = [m for m in matches if posixpath.dirname(m) == importer_dir]
            matches = siblings or _nearest(matches, importer_dir) or matches
            if len(matches) > 1:
                matches = _on_import_path(matches, name, importer_dir)
        if len(matches) != 1 or not self._importable(matches[0], importer):
            return None
        return self._original[matches[0]]

    def _importable(self, module: str, importer: str) -> bool:
        """Whether a file of the run that an import's name picks may be what the import loads: not
        when it shares no folder with the importer and lies in another repository (a run over a folder
        of checkouts: one repository's vendored `peft/` is not what another's `import peft` loads),
        unless inside the importer's (a project the repository ships and installs: PromptKD's
        `Dassl.pytorch/`, a monorepo's `packages/*`, importable wherever the run starts)."""
        if _nearest([module], posixpath.dirname(importer)):
            return True
        own, found = self._repository(importer), self._repository(module)
        return found == own or found.startswith(own.rstrip("/") + "/")

    def _repository(self, path: str) -> str:
        folder = posixpath.dirname(path)
        found = self._repositories.get(folder)
        if found is None:
            found = self._repositories[folder] = repository_root(path, self.root)
        return found


def _on_import_path(paths: list[str], name: str, folder: str) -> list[str]:
    """Those of `paths` (files whose module name ends in `name`) that an import from a file in `folder`
    finds, as Python searches the script's folder and those above it: the one whose top package lies in
    the deepest of them. `import clip` beside `clip/__init__.py` and `clip/clip.py` is the package."""
    depth = len(name.split("."))

    def top(path: str) -> str:  # the folder holding the module's top-level package (or the module)
        parts = path.split("/")
        parts = parts[:-1] if parts[-1] == "__init__.py" else parts
        return "/".join(parts[:-depth])

    found = [(top(path), path) for path in paths]
    reachable = [(held, path) for held, path in found if not held or folder == held or folder.startswith(f"{held}/")]
    deepest = max((len(held) for held, _ in reachable), default=-1)
    return [path for held, path in reachable if len(held) == deepest]


def _nearest(paths: list[str], folder: str) -> list[str]:
    """Those of `paths` sharing the most leading folders with `folder` (at least one)."""
    parts = folder.split("/")

    def shared(path: str) -> int:
        count = 0
        for mine, theirs in zip(parts, path.split("/")[:-1], strict=False):
            if mine != theirs:
                break
            count += 1
        return count

    best = max((shared(path) for path in paths), default=0)
    return [path for path in paths if shared(path) == best] if best else []


def module_name(path: str) -> str:
    """`pkg/sub/mod.py` -> `pkg.sub.mod` (string operations: this runs for every file of a run)."""
    stem = path[: -len(".py")] if path.endswith(".py") else posixpath.splitext(path)[0]
    parts = stem.split("/")
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(part for part in parts if part not in ("", "."))


def is_test_path(path: str) -> bool:
    """Whether `path` (relative to the run's root) is test code as pytest finds it: `test_*.py`,
    `*_test.py`, `conftest.py`, or a file under a `test`/`tests` folder."""
    *folders, name = path.split("/")
    if name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py":
        return True
    return any(folder in ("test", "tests") for folder in folders)


def _dotted_suffixes(path: str) -> list[str]:
    parts = module_name(path).split(".")
    return [".".join(parts[index:]) for index in range(len(parts)) if parts[index:]]


# `from .x import a, b as c` (in parentheses or after a backslash, names may span lines) and `import a.b, c as d`.
_FROM_IMPORT = re.compile(
    r"^[ \t]*from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]*(\([^)]*\)|(?:[^\r\n\\]|\\(?:\r\n|.))*)", re.MULTILINE | re.DOTALL
)
_PLAIN_IMPORT = re.compile(r"^[ \t]*import[ \t]+([^\r\n]*)", re.MULTILINE)
MODULE_ITSELF = ""  # what `import utils` imports from utils.py: any name, as an attribute


def import_statements(text: str) -> list[tuple[int, str, tuple[str, ...]]]:
    """Every import of `text` as (leading dots, module, names): `from .x import a, b as c` is
    (1, "x", ("a", "b")); `import a.b, c as d` is (0, "a.b", ()) and (0, "c", ())."""
    found = [(len(dots), module, tuple(_names(names))) for dots, module, names in _FROM_IMPORT.findall(text)]
    found += [(0, module, ()) for modules in _PLAIN_IMPORT.findall(text) for module in _names(modules)]
    return found


class ImportGraph:
    """Which names the files of the run import from each other, read off their text: what a fix
    that renames or rewires a module-level name of one file must not break in another."""

    def __init__(self, index: ModuleIndex, texts: Mapping[str, str]) -> None:
        self._imported: dict[str, dict[str, set[str]]] = {}  # module path -> name -> importers
        self._texts = texts
        for importer, text in texts.items():
            for level, module, names in import_statements(text):
                source = index.resolve(module, importer, level) if module or level else None
                if not names and source is not None:  # `import utils`
                    self._add(source, MODULE_ITSELF, importer)
                for name in names:
                    submodule = index.resolve(f"{module}.{name}" if module else name, importer, level)
                    if submodule is not None:  # `from pkg import utils`: the module utils itself
                        self._add(submodule, MODULE_ITSELF, importer)
                    elif source is not None:
                        self._add(source, name, importer)

    def _add(self, path: str, name: str, importer: str) -> None:
        if importer != path:
            self._imported.setdefault(path, {}).setdefault(name, set()).add(importer)

    def used_elsewhere(self, path: str, name: str) -> bool:
        """Whether another file of the run may use `name` of the module at `path`: it imports the
        name, or `*`, or the module itself and mentions `.name`."""
        imported = self._imported.get(path, {})
        if name in imported or "*" in imported:
            return True
        return any(f".{name}" in self._texts[importer] for importer in imported.get(MODULE_ITSELF, ()))


def _names(imported: str) -> list[str]:
    """`(a, b as c,  # note\n d)` -> ["a", "b", "d"]: the imported names, aliases and comments dropped."""
    names = []
    for part in re.sub(r"#[^\r\n]*|[()\\]", " ", imported).split(","):
        words = part.split()
        if words and re.fullmatch(r"[\w.*]+", words[0]):
            names.append(words[0])
    return names
