"""Files named on the command line (`mplint train.py`, a pre-commit hook passing the changed
files) are checked with the rest of their project at hand: their imports are followed into its
files as `mplint .` follows them, and only what concerns the named files is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.api import fix_paths, lint_paths

# An RL script loads its policy in bf16 and takes log-probs in a helper of another folder.
RL_PROJECT = {
    "pyproject.toml": "[project]\nname = 'rl-recipes'\n",
    "scripts/train_grpo.py": """\
import torch
from transformers import AutoModelForCausalLM

from rl_utils.logprobs import selective_log_softmax


def train(model_name, bf16=True):
    dtype = torch.bfloat16 if bf16 else torch.float32
    policy = AutoModelForCausalLM.from_pretrained(model_name, torch_dtype=dtype)
    input_ids = torch.randint(0, 100, (2, 8))
    out = policy(input_ids)
    logp = selective_log_softmax(out["logits"], input_ids)
    ratio = torch.exp(logp - logp.detach())
    (-ratio.mean()).backward()


if __name__ == "__main__":
    train("Qwen/Qwen2.5-0.5B")
""",
    "rl_utils/__init__.py": "",
    "rl_utils/logprobs.py": """\
import torch


def selective_log_softmax(logits, index):
    logps = logits.log_softmax(dim=-1)
    return torch.gather(logps, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
""",
    # Imports the helper too, with a bug of its own.
    "scripts/train_ppo.py": """\
import torch

from rl_utils.logprobs import selective_log_softmax

policy = torch.nn.Linear(16, 32).half()
optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5)
tokens = torch.randint(0, 32, (4,))
logp = selective_log_softmax(policy(torch.randn(4, 16).half()), tokens)
""",
    # Not named in these tests: its finding and its syntax error belong to its own check.
    "scripts/train_sft.py": """\
import torch

model = torch.nn.Linear(8, 8).half()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
""",
    "scripts/draft.py": "def evaluate(:\n",
}

HELPER_FINDING = ("rl_utils/logprobs.py", 5, "MP001")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_files) -> Path:
    monkeypatch.chdir(tmp_path)
    return write_files(tmp_path, RL_PROJECT)


def located(paths: list[str], **options: object) -> list[tuple[str, int, str]]:
    return [(found.path, found.line, found.code) for found in lint_paths(paths, **options).findings]  # type: ignore[arg-type]


def test_a_named_script_is_followed_into_its_projects_helpers(project: Path) -> None:
    result = lint_paths(["scripts/train_grpo.py"])

    assert result.files_checked == 1
    assert [(found.path, found.line, found.code) for found in result.findings] == [HELPER_FINDING]
    assert "scripts/train_grpo.py:9" in result.findings[0].message  # the origin, in the named script


def test_a_named_helper_is_judged_with_what_its_importers_give_it(project: Path) -> None:
    # A commit that drops the helper's `.float()` names only the helper: the scripts importing it
    # (unchanged, not named) are what make its logits half; train_ppo.py's own MP003 is not the
    # helper's.
    assert located(["rl_utils/logprobs.py"]) == [HELPER_FINDING]


def test_files_that_are_not_named_are_not_reported(project: Path) -> None:
    # train_sft.py's MP003 and draft.py's MP000 are theirs: naming one script does not report them.
    assert located(["scripts/train_grpo.py", "rl_utils/logprobs.py"]) == [HELPER_FINDING]
    assert located(["."]) == [
        ("rl_utils/logprobs.py", 5, "MP001"),
        ("scripts/draft.py", 1, "MP000"),
        ("scripts/train_ppo.py", 6, "MP003"),
        ("scripts/train_ppo.py", 6, "MP301"),
        ("scripts/train_sft.py", 4, "MP003"),
        ("scripts/train_sft.py", 4, "MP301"),
    ]


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_cached_run_sees_an_edit_of_a_helper_it_was_not_given(project: Path, jobs: int) -> None:
    assert located(["scripts/train_grpo.py"], jobs=jobs, cache=True) == [HELPER_FINDING]
    helper = project / "rl_utils/logprobs.py"
    helper.write_text(helper.read_text().replace("logits.log_softmax", "logits.float().log_softmax"))

    assert located(["scripts/train_grpo.py"], jobs=jobs, cache=True) == []
    assert located(["rl_utils/logprobs.py"], jobs=jobs, cache=True) == []


def test_a_named_directory_is_its_own_scope(project: Path) -> None:
    # `mplint scripts/` checks what is under scripts/: the helper outside it is not read.
    assert ("rl_utils/logprobs.py", 5, "MP001") not in located(["scripts"])


def test_fixing_a_named_script_reports_its_helpers_finding_and_leaves_the_helper_alone(project: Path) -> None:
    helper = project / "rl_utils/logprobs.py"
    before = helper.read_bytes()

    fixed = fix_paths(["scripts/train_grpo.py"], unsafe=True)

    assert [(found.path, found.line, found.code) for found in fixed.findings] == [HELPER_FINDING]
    assert helper.read_bytes() == before  # not named: not the fix's to edit
