"""Where a repository's root is: the nearest folder above a file holding a marker of one. The
analysis reads a script's launch configurations there, and a run over named files reads the
project's other files there for what they import."""

from __future__ import annotations

import os

# Markers of a repository's root, nearest to the file first: a checkout from an archive has no
# `.git`, and many research repositories ship a conda environment or only a licence (SimPO:
# `environment.yml`, `LICENSE`) beside their `scripts/`.
ROOT_MARKERS = (
    ".git",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "requirements.txt",
    "environment.yml",
    "environment.yaml",
    "LICENSE",
    "LICENSE.txt",
    "LICENSE.md",
)


def marked_root(path: str) -> str | None:
    """The nearest folder above the file at `path` (absolute) holding one of `ROOT_MARKERS`, not the
    home folder nor the filesystem's root (a loose script there is no repository); None without one."""
    home = os.path.expanduser("~")
    folder = os.path.dirname(path)
    while folder != home and os.path.dirname(folder) != folder:
        if any(os.path.exists(os.path.join(folder, marker)) for marker in ROOT_MARKERS):
            return folder
        folder = os.path.dirname(folder)
    return None


def repository_root(path: str, run_root: str) -> str:
    """The repository of the file at `path` (`repository_of`), in a run started on `run_root` (the
    working directory when empty); both may be relative."""
    return repository_of(os.path.abspath(path), os.path.abspath(run_root or "."))


def repository_of(script: str, run_root: str) -> str:
    """The repository a script belongs to: the nearest folder above it holding a marker of a
    repository's root (a run over `src/` still sees the configs at the root), not the home folder
    itself. Without one, the run's root when it holds files of its own (a repository without markers,
    Online-RLHF: its README beside `sft/` and `configs/`), else the folder below it that holds the
    script: a run over a folder of checkouts keeps their configs apart."""
    marked = marked_root(script)
    if marked is not None:
        return marked
    below = os.path.relpath(script, run_root).split(os.sep)
    if len(below) == 1 or below[0] == os.pardir or _looks_like_a_repository(run_root):
        return run_root  # a run at a repository's root (its README, its launch scripts beside its folders)
    return os.path.join(run_root, below[0])


def _looks_like_a_repository(folder: str) -> bool:
    """Whether a folder holds what a repository's root does (a README, a script), not only folders as
    a folder of checkouts does (beside, at most, the findings a run over it writes there)."""
    try:
        return any(
            entry.is_file() and (entry.name.upper().startswith("README") or entry.name.endswith((".py", ".sh")))
            for entry in os.scandir(folder)
        )
    except OSError:
        return False
