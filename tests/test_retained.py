"""Trees kept across runs (the language server's): an edit parses again only the statements it
changed, and what is found is what a fresh run finds."""

from __future__ import annotations

import ast
import gc
import random
import warnings
import weakref
from pathlib import Path
from typing import Any

import pytest

from mplint import api, source
from mplint.config import Settings
from mplint.findings import Finding
from mplint.retained import RetainedTrees, retained
from mplint.run import engine
from mplint.text import SourceFile
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


# What typing does to a line: characters that open or close brackets and strings, continue a line,
# start a comment, end a header; and lines an editor adds or removes whole.
_TYPED = ["(", ")", "[", "]", "{", "}", '"', "'", '"""', "\\", ":", "#", "x", " ", ";", "@", "\t"]
_LINES = [
    "x = 1\n",
    '"""\n',
    "def f(\n",
    "    pass\n",
    "@decorator\n",
    "if x:\n",
    "else:\n",
    "\n",
    "from __future__ import a\n",
]


def _edited(text: str, rng: random.Random) -> str:
    lines = source.split_lines(text) or [""]
    number = rng.randrange(len(lines))
    line = lines[number]
    kind = rng.random()
    if kind < 0.6:  # typing within a line: its number of lines stays
        at = rng.randrange(len(line.rstrip("\n")) + 1)
        line = line[:at] + rng.choice(_TYPED) + line[at + (kind < 0.3) :]
        lines[number] = line if line.endswith("\n") or number == len(lines) - 1 else line + "\n"
    elif kind < 0.8:
        lines.insert(number, rng.choice(_LINES))
    else:
        del lines[number]
    return "".join(lines)


@pytest.mark.parametrize("path", ["examples/rl_finetune.py", "examples/train_fp16.py", "mplint/retained.py"])
def test_cpython_trees_spliced_from_the_last_run_are_those_of_a_whole_parse(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Edits that open strings and brackets, break lines and mend them, one run each; half of them
    # start again from the last text that parsed, as a typo is fixed.
    spliced: list[ast.Module] = []
    splice = source._spliced

    def recording(*args: Any) -> ast.Module | None:
        tree = splice(*args)
        spliced.extend([tree] if tree is not None else [])
        return tree

    monkeypatch.setattr(source, "_spliced", recording)
    text = parsed = (Path(__file__).parent.parent / path).read_text()
    rng = random.Random(path)
    store = RetainedTrees()
    parseable = 0
    for _ in range(300):
        text = _edited(text if rng.random() < 0.5 else parsed, rng)
        with retained(store):
            tree = source.python_tree(SourceFile(path, text))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the escapes that typing a backslash makes
                whole: ast.Module | None = ast.parse(text)
        except SyntaxError:
            whole = None
        assert (tree is None) == (whole is None), text
        if tree is not None and whole is not None:
            assert ast.dump(tree, include_attributes=True) == ast.dump(whole, include_attributes=True), text
            parsed, parseable = text, parseable + 1
    # The comparison ran, mostly on trees made from the last run's (the others: a bracket opened in
    # one statement and closed in another, which only the whole text can tell).
    assert parseable > 50
    assert len(spliced) > parseable / 2
