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
from mplint.source import SourceFile


def discover(paths: Sequence[str | os.PathLike[str]], settings: Settings) -> list[SourceFile]:
    """The sources of every Python file under `paths`, each file once, sorted by display path."""
    for path in paths:
        if not os.path.lexists(path):
            raise MissingPathError(f"{os.fspath(path)}: no such file or directory")
    candidates = [
        (file.is_symlink(), display_path(file), file) for path in paths for file in _python_files(Path(path), settings)
    ]
    # A file reached twice (named twice, or also through a symlink) is checked once, under
    # its own name when that was reached.
    unique: dict[str, tuple[str, Path]] = {}
    for _, display, file in sorted(candidates):
        unique.setdefault(os.path.realpath(file), (display, file))
    return [read_source(file, display) for display, file in sorted(unique.values())]


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


def _python_files(path: Path, settings: Settings) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    for directory, subdirectories, filenames in os.walk(path):
        base = Path(directory)
        # Pruning in place stops os.walk from descending; sorting makes the walk deterministic.
        subdirectories[:] = sorted(name for name in subdirectories if not _is_skipped_directory(base / name, settings))
        for name in sorted(filenames):
            file = base / name
            if name.endswith(".py") and not settings.is_excluded(file):
                yield file


def _is_skipped_directory(directory: Path, settings: Settings) -> bool:
    return directory.is_symlink() or (directory / "pyvenv.cfg").is_file() or settings.is_excluded(directory)
