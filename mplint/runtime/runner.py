"""Run the user's unmodified script like `coverage run` does, and stop it after N optimizer steps."""

from __future__ import annotations

import contextlib
import enum
import os
import runpy
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType, TracebackType

from mplint.runtime.hooks import StepLimitReached
from mplint.runtime.observations import Observations
from mplint.runtime.session import Session
from mplint.runtime.sites import UserCode


class ScriptTimeout(BaseException):
    """Raised in the script's thread by SIGALRM when --timeout expires."""


class Outcome(str, enum.Enum):
    STOPPED = "stopped"  # reached --steps
    FINISHED = "finished"  # ran to its end (or sys.exit(0))
    FAILED = "failed"  # raised, or sys.exit with a non-zero status
    TIMED_OUT = "timed-out"


@dataclass(frozen=True)
class ScriptRun:
    outcome: Outcome
    observations: Observations
    user_files: tuple[str, ...]  # the script and the project files it imported
    failure: str = ""  # the script's traceback or exit status, when it failed or timed out


def run_script(
    script: str,
    script_args: tuple[str, ...] = (),
    *,
    device: str = "auto",
    steps: int | None = 2,
    timeout: float | None = None,
    progress: bool = False,
) -> ScriptRun:
    """Run `script` as `__main__` under a recording Session; torch is restored when this returns."""
    path = os.path.abspath(script)
    user_code = UserCode([os.path.dirname(path), os.getcwd()])
    session = Session(device, user_code, steps=steps, progress=progress)
    failure = ""
    already_loaded = set(sys.modules)
    with _script_environment(path, script_args), _alarm(timeout):
        try:
            with session:
                runpy.run_path(path, run_name="__main__")
            outcome = Outcome.FINISHED
        except StepLimitReached:
            outcome = Outcome.STOPPED
        except ScriptTimeout:
            outcome, failure = Outcome.TIMED_OUT, f"the script ran past --timeout {timeout:g}s"
        except SystemExit as exit_:
            outcome = Outcome.FINISHED if exit_.code in (None, 0) else Outcome.FAILED
            failure = "" if outcome is Outcome.FINISHED else f"the script called sys.exit({exit_.code!r})"
        # The script's own error, reported as its, not mplint's; Ctrl-C too: where it stopped.
        except (Exception, KeyboardInterrupt) as error:
            outcome, failure = Outcome.FAILED, script_traceback(error, user_code)
        user_files = tuple(dict.fromkeys([os.path.realpath(path), *user_code.loaded_files(already_loaded)]))
    if progress:
        sys.stderr.write("\n")
    return ScriptRun(outcome, session.log.freeze(), user_files, failure)


def script_traceback(error: BaseException, user_code: UserCode) -> str:
    """The traceback from the first frame in the user's files on: mplint's and runpy's are noise."""
    trace: TracebackType | None = error.__traceback__
    while trace is not None and not user_code.owns(trace.tb_frame.f_code.co_filename):
        trace = trace.tb_next
    return "".join(traceback.format_exception(type(error), error, trace or error.__traceback__)).rstrip()


@contextlib.contextmanager
def _script_environment(path: str, script_args: tuple[str, ...]) -> Iterator[None]:
    """`sys.argv`, `sys.path[0]` and `sys.modules` as if `python SCRIPT ARGS` ran; restored after."""
    saved_argv, saved_path, saved_modules = sys.argv[:], sys.path[:], set(sys.modules)
    sys.argv = [path, *script_args]
    sys.path.insert(0, os.path.dirname(path))
    try:
        yield
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        # Forget the script's own modules so a second run imports them afresh.
        script_dir = os.path.dirname(path) + os.sep
        for name in set(sys.modules) - saved_modules:
            if (getattr(sys.modules[name], "__file__", None) or "").startswith(script_dir):
                del sys.modules[name]


@contextlib.contextmanager
def _alarm(timeout: float | None) -> Iterator[None]:
    """Raise ScriptTimeout after `timeout` seconds (main thread only: signals go there)."""
    if not timeout or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: FrameType | None) -> None:
        raise ScriptTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
