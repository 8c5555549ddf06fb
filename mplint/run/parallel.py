"""`engine.lint_files` spread over processes and backed by the cache: the same findings, faster.

A run is split by the engine's plan into units (a root file analysed with what it imports) and
files only checked for syntax. Whatever the cache does not hold is checked by a pool of worker
processes, each with its own `engine.Run` over the same files, so a worker parses a helper once
for all the units it handles. The findings are merged as `engine.lint_files` merges them (a set,
sorted), so the output does not depend on the number of processes or on which ran first.
"""

from __future__ import annotations

import gc
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from mplint.errors import InternalError
from mplint.findings import Finding, Place
from mplint.rule import Rule
from mplint.run import engine
from mplint.run.cache import Cache
from mplint.run.prefilter import CodeFacts
from mplint.text import SourceFile

UNIT = "unit"
SYNTAX = "syntax"
# Told (files checked, files) as a run goes.
Progress = Callable[[int, int], None]
# Work items per chunk sent to a worker, times the workers: small enough to balance uneven
# units, large enough that a worker keeps parsed helpers across several of them.
_CHUNKS_PER_WORKER = 32
# Fewer items than this are checked in this process: a worker receives every file's text and
# builds its own run before its first item (~0.3 s of CPU on torch/'s 2,285 files), which an edit
# that leaves one unit to re-analyse does not repay. With more, the pool's second core wins on an
# idle machine (an edit of torch/amp/grad_scaler.py, 3 units: 4.2 s pooled, 4.8 s in one process).
_FEWEST_FOR_WORKERS = 3


@dataclass(frozen=True)
class Checked:
    """What checking one work item (`kind`, `path`) found, and the files it read."""

    kind: str
    path: str
    read: tuple[str, ...]
    findings: tuple[Finding, ...]
    stepped: tuple[Place, ...] = ()


def lint_files(
    files: Sequence[SourceFile],
    rules: Sequence[type[Rule]],
    *,
    jobs: int = 1,
    cache: Cache | None = None,
    start_method: str | None = None,
    progress: Progress | None = None,
    checked: frozenset[str] | None = None,
) -> list[Finding]:
    """What `engine.lint_files(files, rules, checked)` returns, using `jobs` processes and `cache`;
    told to `progress` as (files checked, files) while it goes."""
    with engine.collector_paused():
        run = engine.Run(files, rules, cache.code_facts() if cache is not None else None, checked=checked)
        plan = run.plan()
        if cache is not None:
            cache.put_code_facts(run.prefilter.computed)
            for name in plan.read:
                cache.hash_of(name)  # a data file of the run (a whole-run snapshot depends on it)
        units = [*plan.units, *plan.importers]
        work = [(UNIT, root) for root in units] + [(SYNTAX, source.path) for source in plan.unanalysed]
        findings: list[Finding] = [engine.unreadable(source) for source in plan.unreadable]
        stepped: list[Place] = []
        importers = frozenset(plan.importers)

        def keep(path: str, found: Sequence[Finding], steps: Sequence[Place]) -> None:
            findings.extend(run.findings_in_checked(found) if path in importers else found)
            stepped.extend(steps)

        pending = []
        for kind, path in work:
            cached = cache.get(kind, path) if cache is not None else None
            if cached is None:
                pending.append((kind, path))
            else:
                keep(path, *cached)
        done = len(work) - len(pending)
        for item in _check(run, pending, jobs, start_method):
            keep(item.path, item.findings, item.stepped)
            if cache is not None:
                cache.put(item.kind, item.path, item.read, item.findings, item.stepped)
            done += 1
            if progress is not None:
                progress(done, len(work))
    return sorted(set(engine.without_refuted(findings, stepped, rules)), key=Finding.sort_key)


def _check(run: engine.Run, work: list[tuple[str, str]], jobs: int, start_method: str | None) -> Iterator[Checked]:
    workers = min(jobs, len(work))
    if workers <= 1 or len(work) < _FEWEST_FOR_WORKERS:
        yield from _check_items(run, work)
        return
    size = max(1, len(work) // (workers * _CHUNKS_PER_WORKER))
    chunks = [work[start : start + size] for start in range(0, len(work), size)]
    context = multiprocessing.get_context(start_method)
    initargs = (tuple(run.files.values()), run.rules, run.prefilter.known, run.roots)
    with ProcessPoolExecutor(workers, context, initializer=_start_worker, initargs=initargs) as pool:
        for outcome in pool.map(_check_chunk, chunks):
            if isinstance(outcome, _Failure):
                raise _WorkerFailure(outcome.path, outcome.message)
            yield from outcome


def _check_items(run: engine.Run, work: list[tuple[str, str]]) -> Iterator[Checked]:
    for kind, path in work:
        if kind == UNIT:
            unit = run.lint_unit(path)
            yield Checked(kind, path, unit.read, unit.findings, unit.stepped)
        else:
            yield Checked(kind, path, (path,), tuple(engine.check_syntax(run.files[path])))


# A worker's run, set once by `_start_worker` and used by every chunk it checks.
_worker: engine.Run | None = None


def _start_worker(
    files: Sequence[SourceFile],
    rules: Sequence[type[Rule]],
    code_facts: Mapping[str, CodeFacts],
    roots: frozenset[str],
) -> None:
    global _worker
    gc.disable()  # as `engine.collector_paused` does for the parent, for the worker's whole life
    _worker = engine.Run(files, rules, code_facts, roots)


@dataclass(frozen=True)
class _Failure:
    """An InternalError in a worker, sent back as data (the exception itself does not pickle)."""

    path: str
    message: str


def _check_chunk(work: list[tuple[str, str]]) -> list[Checked] | _Failure:
    assert _worker is not None, "the pool's initializer sets the worker's run"
    try:
        return list(_check_items(_worker, work))
    except InternalError as error:
        return _Failure(error.path, str(error))


class _WorkerFailure(InternalError):
    """A worker's InternalError, raised again in the parent with the worker's message."""

    def __init__(self, path: str, message: str) -> None:
        Exception.__init__(self, message)
        self.path = path
        self.cause = RuntimeError(message)
