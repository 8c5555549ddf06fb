"""Follow training into child processes: `torch.multiprocessing.spawn`/`start_processes` workers,
`multiprocessing.Process` with fork, spawn or forkserver, elastic launches with a function entry
point. Each child records what it ran and writes its observations to a directory the parent
reads once the script is done; the parent merges them as it merges torchrun's ranks.

The hook is on `BaseProcess.start`: the target is wrapped in `RecordedTarget`, which travels to the
child with the process object (pickled for spawn/forkserver, copied by fork). In a forked child the
parent's Session is already installed (copied with the process), so the child only forgets the
parent's observations; in a spawned child a fresh Session is opened around the target.
DataLoader workers are left alone: they load data, and their exit is not theirs to choose.
"""

from __future__ import annotations

import contextlib
import glob
import multiprocessing
import os
import pickle
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mplint.runtime.observations import Observations
from mplint.runtime.sites import without_plumbing

# Targets that are not training: DataLoader workers, which torch may kill at any moment.
_SKIPPED_TARGETS = frozenset({"torch.utils.data._utils.worker._worker_loop"})
# `torch.multiprocessing.spawn`'s process target: `_wrap(fn, i, args, error_file)`.
_SPAWN_WRAP = "torch.multiprocessing.spawn._wrap"


@dataclass(frozen=True)
class ChildSettings:
    """What a child needs to record as the parent does: all plain, picklable data."""

    device: str  # resolved: "cuda", "cpu" or "emulate-cuda"
    steps: int | None
    roots: tuple[str, ...]
    directory: str  # where each child writes `<pid>.pickle`
    details: bool = False  # keep what only a report draws (Session's `details`)


@dataclass(frozen=True)
class ChildReport:
    observations: Observations
    user_files: tuple[str, ...]


class RecordedTarget:
    """A process target that records the child's run (picklable when the target is)."""

    def __init__(self, target: Callable[..., Any], settings: ChildSettings) -> None:
        self.target = target
        self.settings = settings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from mplint.runtime import session as session_module
        from mplint.runtime.hooks import StepLimitReached
        from mplint.runtime.session import Session
        from mplint.runtime.sites import UserCode

        already_loaded = set(sys.modules)
        inherited = session_module.active_session()
        user_code = UserCode(self.settings.roots)
        if inherited is not None:  # forked: the parent's hooks are here already, its notes are not ours
            inherited.forget()
            session: Any = inherited
            recording: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        else:
            session = Session(self.settings.device, user_code, steps=self.settings.steps, details=self.settings.details)
            recording = session
        try:
            with recording:
                return self.target(*args, **kwargs)
        except StepLimitReached:
            return None  # this worker trained its N steps: a clean exit, as the parent's stop is
        except Exception:
            # What `multiprocessing` prints for a failed process, without mplint's frames (this one too).
            sys.stderr.write(f"Process {multiprocessing.current_process().name}:\n")
            sys.stderr.write(without_plumbing(traceback.format_exc()))
            sys.stderr.flush()
            raise SystemExit(1) from None
        finally:
            if _qualified_name(self.target) == _SPAWN_WRAP and len(args) == 4:
                _clean_error_file(args[3])
            report = ChildReport(session.log.freeze(), tuple(user_code.loaded_files(already_loaded)))
            _write(self.settings.directory, report)


def _clean_error_file(path: str) -> None:
    """`torch.multiprocessing.spawn` sends a failed worker's `traceback.format_exc()` to the parent
    in this file; the frames of mplint's modes in it are not the script's."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return
    with open(path, "rb") as file:
        text = pickle.load(file)  # written by torch's `_wrap` in this process
    if isinstance(text, str):
        with open(path, "wb") as file:
            pickle.dump(without_plumbing(text), file)


def _write(directory: str, report: ChildReport) -> None:
    path = os.path.join(directory, f"{os.getpid()}.pickle")
    with open(path + ".partial", "wb") as file:
        pickle.dump(report, file)
    os.replace(path + ".partial", path)


def read_reports(directory: str) -> list[ChildReport]:
    """Every child's report, oldest process first (the directory is this run's own)."""
    reports = []
    for path in sorted(glob.glob(os.path.join(directory, "*.pickle")), key=os.path.getmtime):
        with open(path, "rb") as file:
            reports.append(pickle.load(file))
    return reports


def _qualified_name(target: object) -> str:
    return f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', '')}"


@contextlib.contextmanager
def following_children(settings: ChildSettings) -> Iterator[list[Any]]:
    """While active, every process started gets a recording target; yields the processes started."""
    from multiprocessing import process

    started: list[Any] = []
    original_start = process.BaseProcess.start

    def start(self: Any) -> None:
        target = getattr(self, "_target", None)
        if (
            target is not None
            and not isinstance(target, RecordedTarget)
            and _qualified_name(target) not in _SKIPPED_TARGETS
        ):
            self._target = RecordedTarget(target, settings)
        original_start(self)
        started.append(self)

    process.BaseProcess.start = start  # type: ignore[method-assign]
    try:
        yield started
    finally:
        process.BaseProcess.start = original_start  # type: ignore[method-assign]


def stop_leftovers(processes: list[Any]) -> None:
    """Terminate the children still running when the script stopped (timed out, or failed)."""
    for child in processes:
        with contextlib.suppress(Exception):
            if child.is_alive():
                child.terminate()
                child.join(timeout=5)
