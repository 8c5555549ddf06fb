"""Which files a run checks, and their text.

Directories are walked for `.py` files, pruning excluded directories, virtualenvs and
symlinked directories (which are not followed, so links cannot loop). As in ruff, a path
named on the command line is always checked, even if an exclude pattern matches it; the
patterns only prune what a walk finds. The order is sorted, so runs are reproducible.
"""

from __future__ import annotations

import io
import os
import tokenize
from collections.abc import Iterator, Sequence
from pathlib import Path

from mplint.config import Settings, display_path
from mplint.errors import MissingPathError
from mplint.repository import marked_root
from mplint.text import SourceFile


def discover(paths: Sequence[str | os.PathLike[str]], settings: Settings) -> list[SourceFile]:
    """The sources of every Python file under `paths`, each file once, sorted by display path."""
    return [read_source(file, display) for display, file in python_files(paths, settings)]


def python_files(paths: Sequence[str | os.PathLike[str]], settings: Settings) -> list[tuple[str, str]]:
    """(display path, path) of every Python file under `paths`, each file once, sorted by display path."""
    for path in paths:
        if not os.path.lexists(path):
            raise MissingPathError(f"{os.fspath(path)}: no such file or directory")
    candidates = [
        (is_link, display_path(file), file, identity)
        for path in paths
        for file, is_link, identity in _python_files(os.fspath(path), settings)
    ]
    # A file reached twice (named twice, or also through a symlink) is checked once, under
    # its own name when that was reached.
    unique: dict[str, tuple[str, str]] = {}
    for _, display, file, identity in sorted(candidates):
        unique.setdefault(identity, (display, file))
    return sorted(unique.values())


def project_files(
    paths: Sequence[str | os.PathLike[str]], listed: Sequence[tuple[str, str]], settings: Settings
) -> list[tuple[str, str]]:
    """(display path, path) of the other Python files of the repositories (`marked_root`) of the
    files named in `paths` (not of named directories: a directory is the scope its user chose).
    `mplint train.py` and a pre-commit hook, which names only the changed files, then follow
    `train.py`'s imports into its helpers as `mplint .` does, while only the named files are units."""
    files = [os.path.abspath(path) for path in paths if not os.path.isdir(path)]
    roots = sorted({root for root in map(marked_root, files) if root is not None})
    if not roots:
        return []
    named = {display for display, _ in listed}
    return [item for item in python_files(roots, settings) if item[0] not in named]


def read_source(path: str | os.PathLike[str], display: str | None = None) -> SourceFile:
    """The decoded text of the file at `path`, or why it has none."""
    display = display if display is not None else display_path(path)
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return SourceFile(path=display, text=None, error=f"cannot read file: {error.strerror}")
    return decode_source(data, display)


def decode_source(data: bytes, path: str) -> SourceFile:
    """`data` decoded as Python source: UTF-8 unless a PEP 263 coding cookie says otherwise."""
    if b"\x00" in data:
        return SourceFile(path=path, text=None, error="binary file (contains NUL bytes)")
    declaration_error = None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        # Also raised for undecodable bytes in the first two lines: naming the byte is clearer.
        encoding, declaration_error = "utf-8", f"bad encoding declaration: {error.msg}"
    try:
        # `utf-8-sig` (what detect_encoding reports for a BOM) strips the BOM.
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        name = "UTF-8" if encoding.startswith("utf-8") else encoding
        byte = data[error.start]
        return SourceFile(
            path=path,
            text=None,
            error=f"not valid {name} (byte 0x{byte:02x} at offset {error.start})",
        )
    if declaration_error is not None:
        return SourceFile(path=path, text=None, error=declaration_error)
    return SourceFile(path=path, text=text, error=None)


def _python_files(path: str, settings: Settings) -> Iterator[tuple[str, bool, str]]:
    """Each Python file at or under `path`: its path, whether it is a symlink, and what identifies
    the file it reaches (its real path). Plain strings and one `realpath` per directory: pathlib
    and a `realpath` per file were most of a warm run over torch's 2,285 files."""
    if not os.path.isdir(path):
        yield path, os.path.islink(path), os.path.realpath(path)
        return
    pending = [path]
    while pending:
        directory = pending.pop()
        real = os.path.realpath(directory)
        with os.scandir(directory) as scan:
            entries = list(scan)
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not _is_skipped_directory(entry.path, settings):
                    pending.append(entry.path)
            elif entry.name.endswith(".py") and not settings.is_excluded(entry.path):
                is_link = entry.is_symlink()
                if is_link and os.path.isdir(entry.path):
                    continue  # a link to a directory (os.path.isdir is False for a loop or a dangling link)
                yield entry.path, is_link, os.path.realpath(entry.path) if is_link else os.path.join(real, entry.name)


def _is_skipped_directory(directory: str, settings: Settings) -> bool:
    """Virtualenvs and excluded directories (symlinked ones never reach here: the walk does not
    follow links, so they cannot loop)."""
    return os.path.isfile(os.path.join(directory, "pyvenv.cfg")) or settings.is_excluded(directory)
