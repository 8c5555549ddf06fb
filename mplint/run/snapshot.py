"""A whole run's findings, kept with the stat of every file it checked: a later run of the same
command over files that did not change reads none of them, parses nothing and never imports libcst.

The cache's entries (`mplint.run.cache`) are keyed by content, which costs reading and hashing
every file and importing the engine to plan the run: most of a warm run. The snapshot trusts a
file's size, modification and change times instead, as git's index and ruff's cache do. A file
whose times fall within `_RACY_NS` of when the snapshot was taken may have changed again within
one timestamp tick without its stat showing it (git's "racy" case): it is compared by content
hash. Data files the analysis read beside the code (a framework's config) are compared by
content: they are few and small. When anything differs (the file list, a stat, a hash, the salt),
the run falls back to the entries, which re-analyse only what changed, and writes a new snapshot.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mplint.findings import Finding
from mplint.run.cache import DIRECTORY, data_file_hash, decoded, digest, encoded, prepare_directory, write_cache_file
from mplint.run.discovery import read_source

# Snapshots kept per project, the most recently written: a pre-commit hook passes each commit's
# own files, and every command line is a snapshot of its own.
_MOST_SNAPSHOTS = 16
# Filesystems stamp times at coarse ticks (ext4 a few ms, FAT 2 s): within this much of taking the
# snapshot, a same-stat rewrite is possible.
_RACY_NS = 2_000_000_000

Stamp = tuple[int, int, int]  # size, modification time, change time (ns)


@dataclass(frozen=True)
class Snapshot:
    """The files of a run (`files`: display path -> path) with their stamps, taken at `taken_ns`
    before any was read, stored at `location` under `salt`."""

    location: Path
    salt: str
    files: Mapping[str, str]
    stamps: Mapping[str, Stamp | None]
    taken_ns: int


def take(root: Path, paths: Sequence[str | os.PathLike[str]], files: Sequence[tuple[str, str]], salt: str) -> Snapshot:
    """Stamp `files` ((display path, path) pairs) of a run over `paths` from the project at `root`.
    One snapshot per command (the paths, from this directory): `mplint .` and `mplint src/` keep theirs."""
    command = "\0".join([os.getcwd(), *(os.fspath(path) for path in paths)])
    location = root / DIRECTORY / f"run-{digest(command)[:32]}.json"
    taken_ns = time.time_ns()
    by_display = dict(files)
    return Snapshot(location, salt, by_display, {display: _stamp(path) for display, path in files}, taken_ns)


def remembered(snapshot: Snapshot) -> list[Finding] | None:
    """The findings stored for this run when none of its files changed since; else None."""
    try:
        stored = json.loads(snapshot.location.read_bytes())
        if stored["salt"] != snapshot.salt or stored["stamps"].keys() != snapshot.stamps.keys():
            return None
        for display, stamp in snapshot.stamps.items():
            if stamp is None or list(stamp) != stored["stamps"][display]:
                return None
            if max(stamp[1], stamp[2]) >= stored["taken"] - _RACY_NS and _content_hash(
                snapshot.files[display], display
            ) != stored["hashes"].get(display):
                return None
        if any(data_file_hash(name) != hashed for name, hashed in stored["data"].items()):
            return None
        return [decoded(item) for item in stored["findings"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # missing, truncated or from another layout: the run checks its files


def save(
    snapshot: Snapshot,
    hashes: Mapping[str, str],
    data_files: Mapping[str, str | None],
    findings: Sequence[Finding],
) -> None:
    """Store `findings` of the run `snapshot` stamped, whose files have the content `hashes` and
    whose analysis read `data_files` ({path: content hash}). The stamps were taken before the files
    were read: one changed since has another stamp, or is racy."""
    racy = {
        display: hashes.get(display)
        for display, stamp in snapshot.stamps.items()
        if stamp is not None and max(stamp[1], stamp[2]) >= snapshot.taken_ns - _RACY_NS
    }
    data = {
        "salt": snapshot.salt,
        "taken": snapshot.taken_ns,
        "stamps": snapshot.stamps,
        "hashes": racy,
        "data": dict(data_files),
        "findings": [encoded(finding) for finding in findings],
    }
    with contextlib.suppress(OSError):
        prepare_directory(snapshot.location.parent)
        write_cache_file(snapshot.location, json.dumps(data).encode())
        _drop_oldest(snapshot.location.parent)


def _drop_oldest(directory: Path) -> None:
    """Delete all but the `_MOST_SNAPSHOTS` most recently written snapshots."""
    written = []
    for stored in directory.glob("run-*.json"):
        with contextlib.suppress(OSError):
            written.append((stored.stat().st_mtime_ns, stored))
    for _, stored in sorted(written, reverse=True)[_MOST_SNAPSHOTS:]:
        with contextlib.suppress(OSError):
            stored.unlink()


def _stamp(path: str) -> Stamp | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns, status.st_ctime_ns


def _content_hash(path: str, display: str) -> str | None:
    text = read_source(path, display).text
    return None if text is None else digest(text)
