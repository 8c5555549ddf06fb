"""Run the user's unmodified script like `coverage run` does, and stop it after N optimizer steps."""

from __future__ import annotations

import contextlib
import enum
import os
import runpy
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from mplint.runtime.children import ChildSettings, read_reports, stop_leftovers
from mplint.runtime.facade import HINT, is_emulation_error
from mplint.runtime.hooks import StepLimitReached
from mplint.runtime.observations import Observations, absorb
from mplint.runtime.session import Session, resolve_device
from mplint.runtime.sites import UserCode, is_plumbing


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
    observations: Observations  # the script's own, merged with its worker processes'
    user_files: tuple[str, ...]  # the script and the project files it (or its workers) imported
    failure: str = ""  # why it failed or stopped early, in one line: its error, its exit status, the timeout
    exit_status: int | str | None = None  # what `python SCRIPT` would have exited with; None when stopped
    traceback: str = ""  # the script's own frames, when it raised or called sys.exit with a failure
    duration: float = 0.0  # seconds the script ran under the recorder
    device: str = ""  # where it ran: "cuda", "cpu", "emulated-cuda"
    hint: str = ""  # what to do about the failure, when mplint knows (an emulation limit)


def run_script(
    script: str,
    script_args: tuple[str, ...] = (),
    *,
    device: str = "auto",
    steps: int | None = 2,
    timeout: float | None = None,
    progress: bool = False,
    details: bool = False,
) -> ScriptRun:
    """Run `script` as `__main__` under a recording Session; torch is restored when this returns.

    Processes the script starts (`torch.multiprocessing.spawn` workers and the like) record too;
    their observations are merged into the result. `details` keeps what only a report draws.
    """
    path = os.path.abspath(script)
    user_code = UserCode([os.path.dirname(path), os.getcwd()])
    failure, trace, hint = "", "", ""
    exit_status: int | str | None = None
    already_loaded = set(sys.modules)
    with tempfile.TemporaryDirectory(prefix="mplint-verify-") as reports:
        children = ChildSettings(resolve_device(device), steps, user_code.roots, reports, details)
        session = Session(device, user_code, steps=steps, progress=progress, children=children, details=details)
        started = time.perf_counter()
        with _script_environment(path, script_args), _alarm(timeout):
            try:
                with session:
                    runpy.run_path(path, run_name="__main__")
                outcome, exit_status = Outcome.FINISHED, 0
            except StepLimitReached:
                outcome = Outcome.STOPPED
            except ScriptTimeout:
                outcome, failure = Outcome.TIMED_OUT, f"the script ran past --timeout {timeout:g}s"
            except SystemExit as exit_:
                exit_status = _exit_status(exit_.code)
                outcome = Outcome.FINISHED if exit_status == 0 else Outcome.FAILED
                if outcome is Outcome.FAILED:
                    failure = f"the script called sys.exit({exit_.code!r})"
                    trace = script_traceback(exit_, user_code, exception_line=False)
            # The script's own error, reported as its, not mplint's; Ctrl-C too: where it stopped.
            except (Exception, KeyboardInterrupt) as error:
                outcome, exit_status = Outcome.FAILED, 130 if isinstance(error, KeyboardInterrupt) else 1
                trace = script_traceback(error, user_code)
                failure = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[-1]
                if session.device == "emulate-cuda" and is_emulation_error(error):
                    hint = f"this error comes from CUDA emulation (no GPU here): {HINT}"
            duration = time.perf_counter() - started
            if outcome in (Outcome.FAILED, Outcome.TIMED_OUT):
                stop_leftovers(session.started_processes)
            workers = read_reports(reports)
            user_files = tuple(
                dict.fromkeys(
                    [
                        os.path.realpath(path),
                        *user_code.loaded_files(already_loaded),
                        *(file for worker in workers for file in worker.user_files),
                    ]
                )
            )
    if progress:
        sys.stderr.write("\n")
    observations = absorb(session.log.freeze(), [worker.observations for worker in workers])
    return ScriptRun(outcome, observations, user_files, failure, exit_status, trace, duration, session.log.device, hint)


def _exit_status(code: object) -> int | str:
    """The status `python` exits with for `sys.exit(code)`: None is 0, a message is 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def script_traceback(error: BaseException, user_code: UserCode, *, exception_line: bool = True) -> str:
    """The traceback in the user's files only: mplint's, runpy's and the library frames above the
    script are noise; library frames below the user's last frame stay (the error happened there).

    `exception_line=False` leaves out the final `Type: message` line (a SystemExit's is not news).
    """
    frames = [
        (frame, line)
        for frame, line in traceback.walk_tb(error.__traceback__)
        if not is_plumbing(frame.f_code.co_filename)
    ]
    first_user = next((index for index, (frame, _) in enumerate(frames) if user_code.owns(frame.f_code.co_filename)), 0)
    stack = traceback.StackSummary.extract(iter(frames[first_user:]))
    lines = ["Traceback (most recent call last):\n", *stack.format()]
    if exception_line:
        lines.extend(traceback.format_exception_only(type(error), error))
    return "".join(lines).rstrip()


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
