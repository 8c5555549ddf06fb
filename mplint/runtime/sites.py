"""Which files are the user's, and the user's `file:line` a call came from."""

from __future__ import annotations

import os
import re
import sys
import sysconfig
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from pathlib import Path
from types import FrameType

from mplint.runtime.observations import Site

MPLINT_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_LIBRARY_DIRS = tuple(
    {
        str(Path(path).resolve()) + os.sep
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_paths().get(key))
    }
)

# Torch's frames that exist only because mplint's modes are active (plain python has none of them).
MODE_PLUMBING = tuple(
    os.path.join("torch", *name.split("/"))
    for name in ("_compile.py", "_dynamo/eval_frame.py", "overrides.py", "utils/_python_dispatch.py", "_ops.py")
)
_FRAME_LINE = re.compile(r'^  File "(?P<file>[^"]+)", line \d+, in ')


def is_mplint_file(filename: str) -> bool:
    return os.path.realpath(filename).startswith(MPLINT_DIR)


def is_plumbing(filename: str) -> bool:
    """mplint's own frames, and torch's that only its modes add."""
    return is_mplint_file(filename) or filename.endswith(MODE_PLUMBING)


def without_plumbing(formatted: str) -> str:
    """A formatted traceback (as `traceback.format_exc()` writes it) without the frames of
    `is_plumbing` files: a worker's traceback, which reaches the parent as text."""
    kept: list[str] = []
    skipping = False
    for line in formatted.splitlines(keepends=True):
        match = _FRAME_LINE.match(line)
        if match:
            skipping = is_plumbing(match.group("file"))
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


class UserCode:
    """Files under the project roots that are neither installed libraries nor mplint itself."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots = tuple(sorted({os.path.realpath(root) + os.sep for root in roots}))
        self._verdicts: dict[str, bool] = {}

    def owns(self, filename: str) -> bool:
        verdict = self._verdicts.get(filename)
        if verdict is None:
            path = os.path.realpath(filename)
            verdict = (
                os.path.isabs(filename)  # not "<frozen runpy>", "<string>"
                and path.startswith(self.roots)
                and not path.startswith(MPLINT_DIR)
                and not path.startswith(_LIBRARY_DIRS)
                and "site-packages" not in path
            )
            self._verdicts[filename] = verdict
        return verdict

    def caller(self, frame: FrameType | None = None) -> Site | None:
        """The innermost frame of the calling stack that runs user code, as a Site."""
        frame = self.caller_frame(frame or sys._getframe(1))
        return None if frame is None else Site(os.path.realpath(frame.f_code.co_filename), frame.f_lineno)

    def caller_frame(self, frame: FrameType | None = None) -> FrameType | None:
        """The innermost frame of the calling stack that runs user code."""
        frame = frame or sys._getframe(1)
        while frame is not None:
            if self.owns(frame.f_code.co_filename):
                return frame
            frame = frame.f_back
        return None

    def loaded_files(self, already_loaded: AbstractSet[str]) -> list[str]:
        """User files among the modules imported since `already_loaded` (what a script pulled in)."""
        files = {
            getattr(module, "__file__", None)
            for name, module in list(sys.modules.items())
            if name not in already_loaded
        }
        return sorted(
            os.path.realpath(name)
            for name in files
            if name and name.endswith(".py") and os.path.isfile(name) and self.owns(name)
        )
