"""flake8 entry point: `flake8 --select MP` reports mplint's findings (lint only, no fixes).

flake8 hands the plugin one file at a time, so cross-file facts (a bf16 model built in another
module) are out of its sight; `mplint` itself checks files together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

import mplint
from mplint import api


class MplintChecker:
    name = "mplint"
    version = mplint.__version__

    def __init__(self, tree: ast.AST, filename: str, lines: Sequence[str]) -> None:
        self.filename = filename
        self.lines = lines

    def run(self) -> Iterator[tuple[int, int, str, type]]:
        source = "".join(self.lines)
        path = api.STDIN if self.filename in ("-", "stdin") else self.filename
        for finding in api.lint_source(source, path):
            # flake8 columns are 0-based; its own noqa handling applies on top.
            yield finding.line, finding.column - 1, f"{finding.code} {finding.message}", type(self)
