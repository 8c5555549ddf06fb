"""Where each node of a libcst tree starts and ends in its code, by one code generation pass.

libcst's `PositionProvider` gives the same ranges, but through `MetadataWrapper` (a visitor pass
over the whole tree besides the code generation), a regular expression split of every token and
two objects per node: three times slower, and a run asks for the positions of every file it
reports in. Imported only when a position is first needed (it imports libcst.metadata).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import libcst as cst
from libcst.metadata.position_provider import PositionProvidingCodegenState

# (line, column, end line, end column): lines 1-based, columns 0-based, end exclusive (libcst's).
Range = tuple[int, int, int, int]


def node_ranges(module: cst.Module) -> dict[int, Range]:
    """The range of every node of `module`, keyed by `id(node)` (the tree keeps its nodes alive;
    libcst's `__hash__` is a Python call per lookup)."""
    state = _RangeRecorder(
        default_indent=module.default_indent,
        default_newline=module.default_newline,
        provider=None,  # type: ignore[arg-type]  # the recorder keeps the ranges itself
    )
    state.ranges, state.starts = {}, []
    module._codegen(state)
    return state.ranges


class _RangeRecorder(PositionProvidingCodegenState):
    """libcst's position-recording code generation state, keeping plain tuples by node id."""

    ranges: dict[int, Range]
    starts: list[tuple[int, int]]  # (line, column) where each node being generated began

    def _update_position(self, value: str) -> None:
        if "\n" in value or "\r" in value:
            super()._update_position(value)
        else:  # most tokens: no regular expression
            self.column += len(value)

    def before_codegen(self, node: cst.CSTNode) -> None:
        self.starts.append((self.line, self.column))

    def after_codegen(self, node: cst.CSTNode) -> None:
        line, column = self.starts.pop()
        # A syntactic position recorded inside the node's own code generation wins (libcst's rule).
        self.ranges.setdefault(id(node), (line, column, self.line, self.column))

    @contextmanager
    def record_syntactic_position(
        self,
        node: cst.CSTNode,
        *,
        start_node: cst.CSTNode | None = None,
        end_node: cst.CSTNode | None = None,
    ) -> Iterator[None]:
        line, column = self.line, self.column
        try:
            yield
        finally:
            end_line, end_column = self.line, self.column
            if start_node is not None:
                line, column = self.ranges[id(start_node)][:2]
            if end_node is not None:
                end_line, end_column = self.ranges[id(end_node)][2:]
            self.ranges[id(node)] = (line, column, end_line, end_column)
