"""Which file of the run a dotted module name (`utils.logprobs`, `.helpers`) refers to."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Optional


class ModuleIndex:
    """Maps every dotted suffix of each file's module path to the file, so that `import utils.x`
    resolves whether the run was started at the repository root or inside `src/`."""

    def __init__(self, paths: list[str]) -> None:
        self._by_name: dict[str, list[str]] = {}
        self._original: dict[str, str] = {}
        for path in paths:
            normal = str(PurePosixPath(path))
            self._original[normal] = path
            for name in _dotted_suffixes(normal):
                self._by_name.setdefault(name, []).append(normal)

    def resolve(self, name: str, importer: str, level: int = 0) -> Optional[str]:
        """The file for module `name` imported from `importer` (with `level` leading dots), if unique."""
        if level:
            base = PurePosixPath(importer).parent
            for _ in range(level - 1):
                base = base.parent
            target = base.joinpath(*name.split(".")) if name else base
            for candidate in (f"{target}.py", f"{target}/__init__.py"):
                if candidate in self._original:
                    return self._original[candidate]
            return None
        matches = self._by_name.get(name, [])
        if len(matches) > 1:
            # Prefer the candidate next to the importer (a script importing its sibling module).
            importer_dir = PurePosixPath(importer).parent
            matches = [m for m in matches if PurePosixPath(m).parent == importer_dir]
        return self._original[matches[0]] if len(matches) == 1 else None


def _module_name(path: str) -> str:
    parts = list(PurePosixPath(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(part for part in parts if part not in ("", ".", "/"))


def _dotted_suffixes(path: str) -> list[str]:
    parts = _module_name(path).split(".")
    return [".".join(parts[index:]) for index in range(len(parts)) if parts[index:]]
