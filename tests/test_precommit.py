"""The pre-commit hooks of `.pre-commit-hooks.yaml`, run by the real pre-commit: it installs this
checkout into a fresh virtualenv (pip needs an index for click), so these are slow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git"),
]
pytest.importorskip("pre_commit")


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One hook environment for the module: building it is the slow part."""
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    git("init", "-q", cwd=tmp_path)
    git("config", "user.email", "ml@example.com", cwd=tmp_path)
    git("config", "user.name", "ML engineer", cwd=tmp_path)
    return tmp_path


def try_repo(hook: str, repository: Path, home: Path, *files: str) -> subprocess.CompletedProcess[str]:
    """Run `hook` as a commit would, on the staged `files` (every file when none is given)."""
    git("add", ".", cwd=repository)
    environment = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    chosen = ["--files", *files] if files else ["--all-files"]
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "try-repo", str(CHECKOUT), hook, *chosen],
        cwd=repository,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_the_check_hook_fails_on_a_finding_and_names_it(
    repository: Path, pre_commit_home: Path, uncast_log_softmax: str
) -> None:
    (repository / "train.py").write_text(uncast_log_softmax)
    completed = try_repo("mplint", repository, pre_commit_home)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "train.py:4:8: MP001 [uncast-log-softmax]" in completed.stdout


def test_the_check_hook_passes_a_clean_file(repository: Path, pre_commit_home: Path, uncast_log_softmax: str) -> None:
    clean = uncast_log_softmax.replace("torch.randn(2, 4))", "torch.randn(2, 4)).float()")
    (repository / "train.py").write_text(clean)
    completed = try_repo("mplint", repository, pre_commit_home)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Passed" in completed.stdout


def test_the_fix_hook_applies_safe_fixes_and_fails_so_the_change_is_seen(
    repository: Path, pre_commit_home: Path
) -> None:
    (repository / "train.py").write_text("import torch\n\nscaler = torch.cuda.amp.GradScaler()\n")
    completed = try_repo("mplint-fix", repository, pre_commit_home)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "files were modified by this hook" in completed.stdout
    assert (repository / "train.py").read_text().endswith('scaler = torch.amp.GradScaler("cuda")\n')


def test_a_commit_of_a_helper_alone_is_judged_with_the_script_that_imports_it(
    repository: Path, pre_commit_home: Path
) -> None:
    # The commit drops the helper's `.float()`: pre-commit passes only the helper, and the bf16 policy
    # that reaches it is built in the (unchanged) training script.
    (repository / "train.py").write_text(
        "import torch\n"
        "from logprobs import token_log_probs\n\n"
        "policy = torch.nn.Linear(16, 32).to(torch.bfloat16)\n"
        "logp = token_log_probs(policy(torch.randn(4, 16, dtype=torch.bfloat16)))\n"
    )
    (repository / "logprobs.py").write_text("def token_log_probs(logits):\n    return logits.log_softmax(-1)\n")
    completed = try_repo("mplint", repository, pre_commit_home, "logprobs.py")
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "logprobs.py:2:12: MP001 [uncast-log-softmax]" in completed.stdout
