"""Trees kept across the runs of a long-lived process (the language server): the libcst tree of
each top-level statement a run parsed piece by piece, and its positions, by file, text and
occurrence. After an edit only the statements it changed are parsed and positioned again: on a
1,000-line script that is most of what re-analysing it cost.

Runs read the store set for them with `retained(store)`; plain runs (the CLI) set none and keep
nothing. A tree is kept for one file only (two files with the same statement get two trees, as
facts are recorded per node), and a store holds what its last run used: `retained` drops the rest
when the run ends, so memory stays flat however many edits come.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TypeVar, cast

import libcst as cst

# (path, the statement's text, how many identical statements come before it in the file).
Key = tuple[str, str, int]
T = TypeVar("T")


class RetainedTrees:
    def __init__(self) -> None:
        self._trees: dict[Key, cst.Module | None] = {}
        # What was derived from a kept tree alone (its positions, its nodes in order), by kind.
        self._derived: dict[tuple[str, Key], object] = {}
        self._used: set[Key] = set()

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

    def sweep(self) -> None:
        """Forget what the run that ended did not use."""
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
