"""The plain Python API behind the CLI: check paths or one source text, get findings.

`select`/`ignore` (codes or prefixes such as `MP0`, or `ALL`) layer on top of the configured
ones as the CLI's `--select`/`--ignore` do: a `select` replaces the configured selection.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from mplint.config import Settings, display_path, load_settings
from mplint.findings import Finding, merge_routes
from mplint.registry import all_rules, rule_codes
from mplint.run.discovery import decode_source, project_files, python_files, read_source
from mplint.text import SourceFile

if TYPE_CHECKING:
    from mplint import fixes
    from mplint.run.cache import Cache, Memory

StrPath = Union[str, "os.PathLike[str]"]

STDIN = "<stdin>"


@dataclass(frozen=True)
class LintResult:
    findings: tuple[Finding, ...]
    files_checked: int


def lint_paths(
    paths: Sequence[StrPath],
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    config_file: StrPath | None = None,
    jobs: int = 1,
    cache: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> LintResult:
    """Check every Python file under `paths` (files or directories) together, in `jobs`
    processes, reusing and updating the project's `.mplint_cache/` when `cache` is set; `progress`
    is told (files checked, files) as the check goes."""
    settings = settings_for(paths[0] if paths else None, select, ignore, config_file)
    listed = python_files(paths, settings)
    # Named files are checked with their project's files at hand, for what they import.
    project = project_files(paths, listed, settings)
    named = frozenset(display for display, _ in listed) if project else None
    if not cache:
        files = [read_source(path, display) for display, path in [*listed, *project]]
        checked, _ = _checked(files, settings, jobs=jobs, cache=False, progress=progress, named=named)
        return LintResult(tuple(_reported(checked, settings)), len(listed))
    from mplint.run import snapshot
    from mplint.run.cache import run_salt

    codes = [code for code in rule_codes() if settings.is_selected(code)]
    taken = snapshot.take(settings.root, paths, [*listed, *project], run_salt(codes, settings.config_file))
    found = snapshot.remembered(taken)
    if found is None:
        files = [read_source(path, display) for display, path in [*listed, *project]]
        checked, store = _checked(files, settings, jobs=jobs, cache=True, progress=progress, named=named)
        if store is not None:
            snapshot.save(taken, store.hashes, store.data_files, checked)
        found = checked
    return LintResult(tuple(_reported(found, settings)), len(listed))


def lint_source(
    source: str | bytes,
    path: str = STDIN,
    *,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    config_file: StrPath | None = None,
) -> list[Finding]:
    """Check one source text as if it were the file at `path` (its config, its per-file-ignores).

    Bytes are decoded as a file's would be (BOM, coding cookie); undecodable ones yield MP000.
    """
    file, settings = _one_source(source, path, select, ignore, config_file)
    return lint_sources([file], settings)


def fix_paths(
    paths: Sequence[StrPath],
    *,
    unsafe: bool = False,
    write: bool = True,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    config_file: StrPath | None = None,
    jobs: int = 1,
    cache: bool = False,
) -> fixes.FixResult:
    """Apply the fixes of what `lint_paths` finds (the safe ones; unsafe ones too with `unsafe`)
    and write the changed files; with `write=False` the result only says what would change.
    `jobs` and `cache` serve every lint pass as in `lint_paths`: a pass after a fix re-analyses
    only the units whose files the fix changed."""
    from mplint import fixes

    settings = settings_for(paths[0] if paths else None, select, ignore, config_file)
    listed = python_files(paths, settings)
    files = [read_source(path, display) for display, path in listed]
    project = [read_source(path, display) for display, path in project_files(paths, listed, settings)]
    lint = functools.partial(lint_sources, settings=settings, jobs=jobs, cache=cache, project=project)
    result = fixes.fix_sources(files, lint, unsafe=unsafe)
    return fixes.write_fixes(result, files, lint, unsafe=unsafe) if write else result


def fix_source(
    source: str | bytes,
    path: str = STDIN,
    *,
    unsafe: bool = False,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    config_file: StrPath | None = None,
) -> fixes.FixResult:
    """`lint_source` with the fixes applied: the fixed text is in the result's `changes` (none
    when nothing changed); nothing is written."""
    from mplint import fixes

    file, settings = _one_source(source, path, select, ignore, config_file)
    return fixes.fix_sources([file], functools.partial(lint_sources, settings=settings), unsafe=unsafe)


def _one_source(
    source: str | bytes,
    path: str,
    select: Iterable[str] | None,
    ignore: Iterable[str] | None,
    config_file: StrPath | None,
) -> tuple[SourceFile, Settings]:
    """One source text as the file at `path` (its config), decoded as a file's would be."""
    named = path != STDIN
    settings = settings_for(path if named else None, select, ignore, config_file)
    display = display_path(path) if named else path
    if isinstance(source, bytes):
        return decode_source(source, display), settings
    return SourceFile(path=display, text=source, error=None), settings


def settings_for(
    start: StrPath | None,
    select: Iterable[str] | None,
    ignore: Iterable[str] | None,
    config_file: StrPath | None,
) -> Settings:
    """The settings for files at `start` (its configuration, or `config_file`'s) with `select` and
    `ignore` layered on top; raises ConfigError, one line, when they cannot be honoured."""
    known_codes = set(rule_codes())  # MP000 (invalid-syntax) included
    settings = load_settings(start, config_file=config_file, known_codes=known_codes)
    return settings.with_selection(_split_codes(select), _split_codes(ignore), known_codes)


def _split_codes(codes: Iterable[str] | None) -> list[str] | None:
    """`"MP001,MP002"`, `["MP001", "MP002"]` and `["MP001,MP002"]` all mean the same two codes."""
    if codes is None:
        return None
    items = [codes] if isinstance(codes, str) else codes
    return [code.strip() for item in items for code in item.split(",") if code.strip()]


def lint_sources(
    files: Sequence[SourceFile],
    settings: Settings,
    *,
    jobs: int = 1,
    cache: bool = False,
    memory: Memory | None = None,
    unsaved: Iterable[str] = (),
    project: Sequence[SourceFile] = (),
) -> list[Finding]:
    """Check sources already read (from disk, or an editor's buffers) together under `settings`,
    with the other files of their `project` at hand for what they import (`project_files`).

    A long-lived caller (the language server) passes the `memory` it keeps: results are then
    cached across its calls as on disk with `cache`, and the paths in `unsaved` (texts that are
    not what the files hold) are only remembered, never written to `.mplint_cache/`."""
    named = frozenset(source.path for source in files) if project else None
    findings, _ = _checked(
        [*files, *project], settings, jobs=jobs, cache=cache, memory=memory, unsaved=unsaved, named=named
    )
    return _reported(findings, settings)


def _checked(
    files: Sequence[SourceFile],
    settings: Settings,
    *,
    jobs: int,
    cache: bool,
    memory: Memory | None = None,
    unsaved: Iterable[str] = (),
    progress: Callable[[int, int], None] | None = None,
    named: frozenset[str] | None = None,
) -> tuple[list[Finding], Cache | None]:
    """What the selected rules find in `files` (in the `named` ones, when given: the others are
    read for what they define), before per-file ignores, and the cache used."""
    from mplint.run import engine, parallel

    rules = [rule for rule in all_rules() if settings.is_selected(rule.CODE)]
    if jobs == 1 and not cache and memory is None and progress is None:
        return engine.lint_files(files, rules, named), None
    from mplint.run.cache import open_cache

    store = None
    if cache or memory is not None:
        texts = {source.path: source.text for source in files}
        codes = [rule.CODE for rule in rules]
        store = open_cache(settings.root, texts, codes, settings.config_file, memory=memory, unsaved=unsaved)
    return parallel.lint_files(files, rules, jobs=jobs, cache=store, progress=progress, checked=named), store


def _reported(findings: Sequence[Finding], settings: Settings) -> list[Finding]:
    """`findings` less those a per-file ignore silences, one per code and place."""
    return merge_routes([finding for finding in findings if settings.is_enabled(finding.code, finding.path)])
