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
