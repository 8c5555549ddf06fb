"""Trees kept across the runs of a long-lived process (the language server): the libcst tree of
each top-level statement a run parsed piece by piece, and its positions, by file, text and
occurrence. After an edit only the statements it changed are parsed and positioned again: on a
1,000-line script that is most of what re-analysing it cost.

Runs read the store set for them with `retained(store)`; plain runs (the CLI) set none and keep
nothing. A tree is kept for one file only (two files with the same statement get two trees, as
facts are recorded per node), and a store holds what its last run used: `retained` drops the rest
when the run ends, so memory stays flat however many edits come. What the analysis memoises about
the nodes of kept trees (`Interpreter.of_tree`: what a function mentions) is kept too, per file,
and so is what a run made of a whole file (CPython's tree of it), for the next run to renew.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, MutableMapping
from contextvars import ContextVar
from typing import Generic, TypeVar, cast

import libcst as cst

# (path, the statement's text, how many identical statements come before it in the file).
Key = tuple[str, str, int]
T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class RunMemo(MutableMapping[K, V], Generic[K, V]):
    """A memo kept across runs that holds what the last run read or wrote, and nothing older. Keyed
    by nodes of kept trees (the node itself, so no key outlives its node): a run reads facts of the
    nodes of trees it used, which the store keeps exactly as long, so an entry goes when its tree
    goes (or sooner) and memory stays flat however many edits come."""

    def __init__(self) -> None:
        self._now: dict[K, V] = {}
        self._before: dict[K, V] = {}

    def __contains__(self, key: object) -> bool:
        if key in self._before:  # read again: kept for the next run too
            self._now[key] = self._before.pop(key)
        return key in self._now

    def __getitem__(self, key: K) -> V:
        if key not in self:
            raise KeyError(key)
        return self._now[key]

    def __setitem__(self, key: K, value: V) -> None:
        self._now[key] = value

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        del self._now[key]

    def __iter__(self) -> Iterator[K]:
        return iter({**self._before, **self._now})

    def __len__(self) -> int:
        return len(self._now.keys() | self._before.keys())

    def next_run(self) -> None:
        """Forget what the run that ended neither read nor wrote."""
        self._before, self._now = self._now, {}


class RetainedTrees:
    def __init__(self) -> None:
        self._trees: dict[Key, cst.Module | None] = {}
        # What was derived from a kept tree alone (its positions, its nodes in order), by kind.
        self._derived: dict[tuple[str, Key], object] = {}
        self._used: set[Key] = set()
        # Per file: facts the analysis derived from nodes of kept trees, by (function, node).
        self._memos: dict[str, RunMemo[tuple[str, cst.CSTNode], object]] = {}
        # What the last run made of each file it read, by (kind, path); and what this run renewed.
        self._files: dict[tuple[str, str], object] = {}
        self._renewed: set[tuple[str, str]] = set()

    def tree(self, key: Key, parse: Callable[[], cst.Module | None]) -> cst.Module | None:
        """The statement's tree (None where libcst refuses it), parsed only if no run kept it."""
        self._used.add(key)
        if key not in self._trees:
            self._trees[key] = parse()
        return self._trees[key]

    def derived(self, kind: str, key: Key, compute: Callable[[], T]) -> T:
        """`kind` of the kept tree at `key` (what `compute` derives from that tree alone), computed
        once while the tree is kept."""
        if (kind, key) not in self._derived:
            self._derived[(kind, key)] = compute()
        return cast(T, self._derived[(kind, key)])

    def memo(self, path: str) -> RunMemo[tuple[str, cst.CSTNode], object]:
        """The file's memo of facts of its kept nodes (`Interpreter.of_tree`), shared by the runs."""
        return self._memos.setdefault(path, RunMemo())

    def renewed(self, kind: str, path: str, renew: Callable[[T | None], T]) -> T:
        """`kind` of the file at `path` as it is now: what `renew` makes of what the last run that
        read the file made of it (None the first time)."""
        key = (kind, path)
        self._files[key] = made = renew(cast("T | None", self._files.get(key)))
        self._renewed.add(key)
        return made

    def sweep(self) -> None:
        """Forget what the run that ended did not use."""
        self._files = {key: made for key, made in self._files.items() if key in self._renewed}
        self._renewed = set()
        for memo in self._memos.values():
            memo.next_run()
        self._memos = {path: memo for path, memo in self._memos.items() if memo}
        self._trees = {key: tree for key, tree in self._trees.items() if key in self._used}
        self._derived = {found: value for found, value in self._derived.items() if found[1] in self._used}
        self._used = set()


_current: ContextVar[RetainedTrees | None] = ContextVar("retained_trees", default=None)


@contextlib.contextmanager
def retained(store: RetainedTrees) -> Iterator[None]:
    """Runs in the block keep their trees in `store` and reuse those an earlier block kept."""
    token = _current.set(store)
    try:
        yield
    finally:
        _current.reset(token)
        store.sweep()


def current_store() -> RetainedTrees | None:
    return _current.get()
