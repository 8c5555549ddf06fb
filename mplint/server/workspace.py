"""What the language server checks: the workspace's Python files as they are on disk, with the
editor's open buffers over them, checked together by the API as `mplint .` checks them.

An analysis unit is a root file with the files it imports; results are remembered per unit (in
`Memory`, keyed by the content hashes of what the unit read), so after an edit only the units that
read the edited text run again, and a file saved by another program is noticed by its size and
modification time. No LSP here: paths and texts in, findings out.
"""

from __future__ import annotations

import os
import threading
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mplint import api, fixes
from mplint.add_noqa import with_noqa
from mplint.config import Settings
from mplint.errors import ConfigError, MplintError
from mplint.findings import Finding
from mplint.retained import RetainedTrees, retained
from mplint.rules.mp000_invalid_syntax import InvalidSyntax
from mplint.run.cache import Memory
from mplint.run.discovery import discover, read_source
from mplint.text import SourceFile

# A file's identity on disk between two looks: (size, modification time in ns).
Stamp = tuple[int, int]


@dataclass(frozen=True)
class Options:
    """What the editor's settings (`initializationOptions`, `workspace/didChangeConfiguration`)
    may say, as the CLI's `--select`, `--ignore` and `--config`."""

    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    config: str | None = None

    @classmethod
    def from_client(cls, settings: object) -> Options:
        """Options from the client's settings object: its `mplint` section when it has one
        (`{"mplint": {"select": ["MP0"]}}`), else the object itself; ConfigError when malformed."""
        if settings is None:
            return cls()
        if not isinstance(settings, Mapping):
            raise ConfigError(f"editor settings must be an object, got {type(settings).__name__}")
        section = settings.get("mplint", settings)
        if not isinstance(section, Mapping):
            raise ConfigError(f"editor settings 'mplint' must be an object, got {type(section).__name__}")
        select, ignore, config = section.get("select"), section.get("ignore", []), section.get("config")
        return cls(
            select=None if select is None else _strings(select, "select"),
            ignore=_strings(ignore, "ignore"),
            config=None if config is None else _strings([config], "config")[0],
        )


def _strings(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"editor settings '{key}' must be a list of strings")
    return tuple(value)


class Workspace:
    """The files under `root` (paths as mplint prints them: relative to the working directory,
    which the server sets to `root`) and the open buffers. `settings` is None while the
    configuration is broken: then nothing is checked and `config_error` says why."""

    def __init__(self, root: Path, options: Options = Options()) -> None:
        self.root = root
        self.options = options
        self.settings: Settings | None = None
        self.config_error: str | None = None
        self._memory = Memory()
        self._trees = RetainedTrees()
        # One run at a time: runs share the memory, the trees and the garbage collector's state.
        self._running = threading.RLock()
        self._disk: dict[str, SourceFile] = {}
        self._stamps: dict[str, Stamp | None] = {}
        self._config_stamps: dict[Path, Stamp | None] = {}
        self._buffers: dict[str, str] = {}
        self.reload()

    # The editor's buffers, by display path.
    def open(self, path: str, text: str) -> None:
        self._buffers[path] = text

    def close(self, path: str) -> None:
        self._buffers.pop(path, None)

    def reload(self, options: Options | None = None) -> None:
        """Read the configuration again (with new editor `options` if given) and find the files
        again: after a configuration change, or files created or deleted."""
        with self._running:
            self._reload(options)

    def _reload(self, options: Options | None) -> None:
        self.options = options or self.options
        try:
            self.settings = api.settings_for(
                self.root, self.options.select, self.options.ignore or None, self.options.config
            )
            self.config_error = None
        except MplintError as error:
            self.settings, self.config_error = None, str(error)
        self._config_stamps = {path: _stamp(path) for path in self._config_candidates()}
        self._disk = {source.path: source for source in discover([self.root], self.settings)} if self.settings else {}
        self._stamps = {path: _stamp(path) for path in self._disk}

    def buffers(self) -> dict[str, str]:
        """The open buffers' texts now, by path: what a `lint` running meanwhile checks."""
        return dict(self._buffers)

    def lint(self, buffers: Mapping[str, str] | None = None) -> dict[str, list[Finding]]:
        """The findings of every file, by path, with `buffers` (default: as they are now) over
        the files on disk. Runs one at a time, from any thread."""
        return self._lint(self.buffers() if buffers is None else buffers)

    def fixed_text(self, path: str) -> fixes.FileFix | None:
        """`path`'s text before and after its safe fixes, as `mplint --fix` would apply them with
        the rest of the workspace as it is now; None when nothing changes."""
        buffers = self.buffers()
        source = self._source(path, buffers)
        if source is None or self.settings is None:
            return None

        def lint(sources: Sequence[SourceFile]) -> list[Finding]:
            texts = {**buffers, **{source.path: source.text for source in sources if source.text is not None}}
            return [finding for found in self._lint(texts).values() for finding in found]

        result = fixes.fix_sources([source], lint, unsafe=False)
        return result.changes[0] if result.changes else None

    def noqa_text(self, path: str, findings: Iterable[Finding]) -> str | None:
        """`path`'s text with `# noqa` comments silencing `findings`; None when it cannot take them."""
        source = self._source(path, self._buffers)
        findings = list(findings)
        if source is None or any(finding.code == InvalidSyntax.CODE for finding in findings):
            return None  # a file that does not parse reads no comments
        try:
            text, added = with_noqa(source, findings)
        except (tokenize.TokenError, SyntaxError):
            return None
        return text if added else None

    def _source(self, path: str, buffers: Mapping[str, str]) -> SourceFile | None:
        """The file as mplint checks it: its buffer, else its text as last read from disk."""
        text = buffers[path] if path in buffers else self._on_disk(path)
        return SourceFile(path, text) if text is not None else None

    def _lint(self, buffers: Mapping[str, str]) -> dict[str, list[Finding]]:
        with self._running:
            return self._lint_alone(buffers)

    def _lint_alone(self, buffers: Mapping[str, str]) -> dict[str, list[Finding]]:
        self._notice_disk_changes()
        settings = self.settings
        if settings is None:
            return {}
        sources = dict(self._disk)
        for path, text in buffers.items():
            if path in sources or not settings.is_excluded(path):  # an excluded file is not checked, open or not
                sources[path] = SourceFile(path, text)
        unsaved = [path for path, text in buffers.items() if self._on_disk(path) != text]
        found: dict[str, list[Finding]] = {}
        with retained(self._trees):
            findings = api.lint_sources(list(sources.values()), settings, memory=self._memory, unsaved=unsaved)
        for finding in findings:
            found.setdefault(finding.path, []).append(finding)
        return found

    def _on_disk(self, path: str) -> str | None:
        source = self._disk.get(path)
        return source.text if source is not None else None

    def saved(self, paths: Iterable[str]) -> None:
        """The editor says these files changed on disk: read them again at the next run, even where
        their size and time did not change (a coarse clock, a same-size edit)."""
        with self._running:
            for path in paths:
                if path in self._stamps:
                    self._stamps[path] = None

    def _notice_disk_changes(self) -> None:
        """Read again the files saved since they were read (by the editor or anything else), and
        the configuration when one of its files changed."""
        if any(_stamp(path) != stamp for path, stamp in self._config_stamps.items()):
            self._reload(None)
            return
        for path, stamp in list(self._stamps.items()):
            now = _stamp(path)
            if now is None:  # deleted: no longer part of the workspace
                del self._stamps[path], self._disk[path]
            elif now != stamp:
                self._stamps[path] = now
                self._disk[path] = read_source(path, path)

    def _config_candidates(self) -> list[Path]:
        """The files whose change may change the settings: the one in use, the pyproject.toml
        at the root, and the one the editor names."""
        candidates = [self.root / "pyproject.toml"]
        if self.settings is not None and self.settings.config_file is not None:
            candidates.append(self.settings.config_file)
        if self.options.config is not None:
            candidates.append(Path(os.path.abspath(self.options.config)))
        return list(dict.fromkeys(candidates))


def _stamp(path: str | os.PathLike[str]) -> Stamp | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns
