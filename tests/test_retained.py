"""Trees kept across runs (the language server's): an edit parses again only the statements it
changed, and what is found is what a fresh run finds."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from mplint import api, source
from mplint.config import Settings
from mplint.findings import Finding
from mplint.retained import RetainedTrees, retained
from mplint.run import engine
from mplint.source import SourceFile
from mplint.tree import walk

TRAIN = """\
import torch
import torch.nn.functional as F


def token_logprobs(logits, tokens):
    return F.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1))


def main():
    policy = torch.nn.Linear(8, 8).to(torch.bfloat16)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    logp = token_logprobs(policy(torch.randn(2, 8)), torch.zeros(2, dtype=torch.long))
"""


def lint(text: str, store: RetainedTrees | None) -> list[tuple[int, str, str]]:
    files = [SourceFile("train.py", text)]
    settings = Settings(root=Path("."))
    if store is None:
        found = api.lint_sources(files, settings)
    else:
        with retained(store):
            found = api.lint_sources(files, settings)
    return located(found)


def located(findings: list[Finding]) -> list[tuple[int, str, str]]:
    return [(finding.line, finding.code, finding.message) for finding in findings]


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The top-level statements libcst parses from now on."""
    texts: list[str] = []
    parse_piece = source._parse_piece

    def recording(text: str) -> object:
        texts.append(text)
        return parse_piece(text)

    monkeypatch.setattr(source, "_parse_piece", recording)
    return texts


def test_an_edit_parses_again_only_the_statement_it_changed(parsed: list[str]) -> None:
    store = RetainedTrees()
    lint(TRAIN, store)
    parsed.clear()

    edited = TRAIN.replace("lr=1e-4", "lr=3e-4")
    found = lint(edited, store)

    assert parsed == [edited[edited.index("def main") :]]
    assert found == lint(edited, None)
    assert [(line, code) for line, code, _ in found] == [(6, "MP001"), (11, "MP003")]


def test_statements_moved_by_an_edit_above_them_are_reused_at_their_new_lines(parsed: list[str]) -> None:
    store = RetainedTrees()
    lint(TRAIN, store)
    parsed.clear()

    edited = TRAIN.replace("import torch\n", "import torch\n\nSEED = 0\n", 1)
    found = lint(edited, store)

    assert parsed == ["SEED = 0\n"]
    assert [(line, code) for line, code, _ in found] == [(8, "MP001"), (13, "MP003")]
    assert found == lint(edited, None)


def test_identical_statements_of_one_file_are_kept_apart() -> None:
    # One tree for both would put both findings (facts are per node) at the first line.
    text = (
        "import torch\nimport torch.nn.functional as F\n"
        "model = torch.nn.Linear(4, 4).to(torch.bfloat16)\n"
        "logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)\n"
        "logp = F.log_softmax(model(torch.randn(2, 4)), dim=-1)\n"
    )
    store = RetainedTrees()
    lint(text, store)

    assert [(line, code) for line, code, _ in lint(text, store)] == [(4, "MP001"), (5, "MP001")]


def test_the_store_keeps_only_what_the_last_run_used() -> None:
    store = RetainedTrees()
    for step in range(20):
        lint(TRAIN.replace("lr=1e-4", f"lr={step}e-4"), store)

    # Four top-level statements (two imports, two functions), whatever the number of edits.
    assert len(store._trees) == 4


def test_a_finished_run_is_freed_without_the_cyclic_collector() -> None:
    # Runs pause the collector, and a long-lived process runs one per edit: a run caught in a
    # reference cycle (and the trees it holds) would stay until a full collection, ~35 KB an edit.
    store = RetainedTrees()
    lint(TRAIN, store)
    gc.collect()
    runs = weakref.WeakSet[engine.Run]()
    make_run = engine.Run.__init__

    def recorded(self: engine.Run, *args: Any, **kwargs: Any) -> None:
        make_run(self, *args, **kwargs)
        runs.add(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine.Run, "__init__", recorded)
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            lint(TRAIN.replace("lr=1e-4", "lr=2e-4"), store)
            assert len(runs) == 0
        finally:
            if was_enabled:
                gc.enable()


def test_the_facts_of_nodes_are_kept_only_with_their_trees() -> None:
    # The analysis' memo outlives runs with the trees; keyed by nodes, it must not outlive them.
    store = RetainedTrees()
    for step in range(5):
        lint(TRAIN.replace("lr=1e-4", f"lr={step}e-4"), store)

    kept = {id(node) for tree in store._trees.values() if tree is not None for node in walk(tree)}
    memo = store.memo("train.py")
    assert len(memo) > 0
    assert all(id(node) in kept for _, node in memo)
