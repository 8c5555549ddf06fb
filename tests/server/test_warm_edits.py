"""What the language server keeps between runs (statement trees, their positions, the analysis'
facts of their nodes, results by content hash) never changes what is found: after every edit of
a sequence, a warm workspace reports exactly what a cold run over the same texts reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mplint import api
from mplint.analysis import interpreter
from mplint.findings import Finding, Severity
from mplint.server.workspace import Workspace
from mplint.text import SourceFile

MODELS = """\
import torch
from torch import nn


def build_policy(vocab_size, dtype=torch.bfloat16):
    return nn.Sequential(nn.Embedding(vocab_size, 64), nn.Linear(64, vocab_size)).to(dtype)
"""

TRAIN = """\
import argparse

import torch
import torch.nn.functional as F

from models import build_policy


def token_logprobs(logits, tokens):
    return F.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


score = torch.nn.CosineSimilarity(dim=-1)


def evaluate(policy, batch):
    return score(policy(batch["input_ids"]), batch["target"])


class Trainer:
    def __init__(self, policy, lr):
        self.policy = policy
        self.optimizer = torch.optim.AdamW(policy.parameters(), lr=lr)

    def step(self, batch):
        out = {"logits": self.policy(batch["input_ids"])}
        logp = token_logprobs(out["logits"], batch["labels"])
        loss = -logp.mean()
        loss.backward()
        self.optimizer.step()
        return loss.item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    trainer = Trainer(build_policy(512, dtype=dtype), lr=1e-5)
    batch = {"input_ids": torch.randint(0, 512, (4, 16)), "labels": torch.randint(0, 512, (4, 16))}
    trainer.step(batch)


if __name__ == "__main__":
    main()
"""

# (file, text replaced, its replacement), applied in turn to the texts as the last edit left them.
EDITS = [
    # A helper other functions call: cast before the log-softmax, then undo it.
    ("train.py", "F.log_softmax(logits, dim=-1)", "F.log_softmax(logits.float(), dim=-1)"),
    ("train.py", "F.log_softmax(logits.float(), dim=-1)", "F.log_softmax(logits, dim=-1)"),
    # A function nobody calls starts to mention a rule's word (it is analysed on its own only then).
    (
        "train.py",
        'score(policy(batch["input_ids"]), batch["target"])',
        'F.log_softmax(policy(batch["input_ids"]).half(), dim=-1)',
    ),
    # The dtype the configuration picks, then the factory in the other file.
    ("train.py", '"--dtype", default="bfloat16"', '"--dtype", default="float32"'),
    ("train.py", '"--dtype", default="float32"', '"--dtype", default="bfloat16"'),
    ("models.py", ".to(dtype)", ".to(torch.float32)"),
    ("models.py", ".to(torch.float32)", ".to(dtype)"),
    # Imports: another spelling of the same module, then a name the file no longer binds.
    ("train.py", "import torch.nn.functional as F\n", "from torch.nn import functional as F\n"),
    ("train.py", "from models import build_policy\n", "from models import build_policy as make_policy\n"),
    ("train.py", "from models import build_policy as make_policy\n", "from models import build_policy\n"),
    # An import that makes the file one a rule reads whole, then gone again.
    ("train.py", "import argparse\n", "import argparse\nfrom torch.cuda.amp import autocast\n"),
    ("train.py", "from torch.cuda.amp import autocast\n", ""),
    # Lines above everything (every statement moves), a method that stores what the instance holds.
    ("train.py", "import argparse\n", "import argparse\n\nSEED = 0\n"),
    ("train.py", "self.policy = policy\n", "self.policy = policy.to(torch.float16)\n"),
    # A configuration test around the step, and the same statement twice.
    ("train.py", "    trainer.step(batch)\n", "    if args.dtype:\n        trainer.step(batch)\n"),
    ("train.py", "SEED = 0\n", "SEED = 0\nSEED = 0\n"),
    # A half-typed line (MP000), then the line finished.
    ("train.py", "loss = -logp.mean()", "loss = -logp.mean("),
    ("train.py", "loss = -logp.mean(", "loss = -logp.mean()"),
]


def cold(texts: dict[str, str], root: Path) -> list[Finding]:
    """What a fresh run (the CLI's: no kept trees, no remembered results) finds in `texts`."""
    settings = api.settings_for(root, None, None, None)
    return api.lint_sources([SourceFile(path, text) for path, text in texts.items()], settings)


def warm(workspace: Workspace) -> list[Finding]:
    return sorted((finding for found in workspace.lint().values() for finding in found), key=Finding.sort_key)


@pytest.fixture
def project(tmp_path: Path, write_files: Callable, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # paths as the server names them: relative to the root
    return write_files(tmp_path, {"models.py": MODELS, "train.py": TRAIN})


def test_a_warm_workspace_finds_what_a_cold_run_finds_after_every_edit(project: Path) -> None:
    texts = {"models.py": MODELS, "train.py": TRAIN}
    workspace = Workspace(project)
    for path, text in texts.items():
        workspace.open(path, text)
    codes_seen = []
    found_seen: list[list[Finding]] = []
    for step, (path, before, after) in enumerate([(None, "", ""), *EDITS]):
        if path is not None:
            assert before in texts[path], f"edit {step} does not apply"
            texts[path] = texts[path].replace(before, after, 1)
            workspace.open(path, texts[path])
        found = warm(workspace)
        assert found == cold(texts, project), f"after edit {step}"
        codes_seen.append(sorted(finding.code for finding in found))
        found_seen.append(found)
    # The edits change what is found (else the comparison would prove little).
    assert codes_seen[0] == ["MP001", "MP003"]
    assert codes_seen[1] == ["MP003"]  # the helper casts first
    assert codes_seen[3] == ["MP001", "MP001", "MP003"]  # the function nobody calls is analysed now
    # float32 by default: only the uncalled half function; the `bfloat16` the code compares the option
    # with is a configuration of its own, reported as a warning.
    assert codes_seen[4] == ["MP001", "MP001", "MP003"]
    assert [finding.severity for finding in found_seen[4]].count(Severity.ERROR) == 1
    assert codes_seen[9] == ["MP001"]  # `build_policy` unbound: its dtype is unknown
    assert codes_seen[-2] == ["MP000"]


def test_an_edit_walks_again_only_the_functions_it_changed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The facts of a function's code (which words it mentions) are kept with its tree across runs.
    walked: list[str] = []
    mentions = interpreter._mentions

    def recording(node: interpreter.ScopeNode, nested: Callable) -> interpreter.Mentions:
        walked.append(node.name.value)
        return mentions(node, nested)

    monkeypatch.setattr(interpreter, "_mentions", recording)
    workspace = Workspace(project)
    workspace.open("train.py", TRAIN)
    warm(workspace)
    assert {"token_logprobs", "step", "main"} <= set(walked)
    walked.clear()

    workspace.open("train.py", TRAIN.replace("lr=1e-5", "lr=2e-5"))
    warm(workspace)

    assert walked == ["main"]
