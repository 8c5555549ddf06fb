"""Linting reads code, it never runs it: not the file checked, not what it imports, not the
`conftest.py`, `setup.py` or package `__init__.py` lying next to it, and the configuration is
data. Every module of the project below would leave a sentinel file behind if it ran.

`python -I` keeps the working directory off `sys.path`, as the installed `mplint` script does
(plain `python -m` would put it there, and then a project's own `click.py` would be imported
by Python itself, before mplint runs).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mplint.api import fix_paths, lint_paths


def leaves_sentinel(sentinels: Path, name: str) -> str:
    """Top-level code that, run by anyone, writes `sentinels/name`."""
    return f"open({str(sentinels / name)!r}, 'w').write('ran')\n"


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    """A training project whose every module writes a sentinel when run; returns the project
    directory and the (empty) sentinel directory."""
    sentinels = tmp_path / "sentinels"
    sentinels.mkdir()
    root = tmp_path / "project"
    files = {
        # The bf16 policy is built in the sibling module: the finding in train.py needs it read.
        "models.py": leaves_sentinel(sentinels, "models")
        + textwrap.dedent(
            """\
            import torch

            def build_policy():
                return torch.nn.Linear(16, 16).to(torch.bfloat16)
            """
        ),
        "train.py": leaves_sentinel(sentinels, "train")
        + textwrap.dedent(
            """\
            import torch
            import torch.nn.functional as F
            from models import build_policy

            policy = build_policy()
            logp = F.log_softmax(policy(torch.randn(4, 16)), dim=-1)
            """
        ),
        "conftest.py": leaves_sentinel(sentinels, "conftest")
        + "import torch  # bfloat16\n",
        "setup.py": leaves_sentinel(sentinels, "setup")
        + "from setuptools import setup\nsetup(name='trainer')  # fp16\n",
        "trainer/__init__.py": leaves_sentinel(sentinels, "package")
        + "import torch  # autocast\n",
        "trainer/__main__.py": leaves_sentinel(sentinels, "main")
        + "import torch  # GradScaler\n",
        # Shadows of what mplint itself imports: running them would be running user code.
        "click.py": leaves_sentinel(sentinels, "click"),
        "ast.py": leaves_sentinel(sentinels, "ast"),
        "torch/__init__.py": leaves_sentinel(sentinels, "torch"),
        # Configuration values that look like code are strings to match, nothing more.
        "pyproject.toml": textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setup"

            [tool.mplint]
            extend-exclude = ["__import__('os').system('touch {sentinels / "config"}')"]

            [tool.mplint.per-file-ignores]
            "{{open('{sentinels / "config"}', 'w')}}" = ["MP001"]
            """
        ),
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root, sentinels


def test_the_command_line_runs_nothing_it_checks(project: tuple[Path, Path]) -> None:
    root, sentinels = project

    for args in (["."], ["--format", "json", "."], ["--fix", "--unsafe-fixes", "."]):
        result = subprocess.run(
            [sys.executable, "-I", "-m", "mplint", *args],
            cwd=root,
            capture_output=True,
            check=False,
            text=True,
            timeout=120,
        )
        assert result.returncode in (0, 1), result.stderr

    assert sorted(path.name for path in sentinels.iterdir()) == []
    # The run did read the project: the fix reached train.py through models.py.
    assert (
        "F.log_softmax(policy(torch.randn(4, 16)).float(), dim=-1)"
        in (root / "train.py").read_text()
    )


def test_the_api_neither_runs_nor_imports_the_project(
    project: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, sentinels = project
    monkeypatch.chdir(root)
    modules_before = set(sys.modules)

    result = lint_paths(["."], select=["ALL"])
    fix_paths(["."], write=False, unsafe=True, select=["ALL"])

    assert [(f.path, f.code) for f in result.findings] == [("train.py", "MP001")]
    assert sorted(path.name for path in sentinels.iterdir()) == []
    imported = set(sys.modules) - modules_before
    assert not {"models", "train", "conftest", "setup", "trainer"} & imported


def test_the_static_path_never_imports_torch(project: tuple[Path, Path]) -> None:
    root, sentinels = project
    check = textwrap.dedent(
        """\
        import json, sys
        from mplint.cli import main
        from mplint.api import fix_paths, lint_paths
        lint_paths(["."], select=["ALL"])
        fix_paths(["."], write=False, unsafe=True)
        print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] == "torch")))
        """
    )

    result = subprocess.run(
        [sys.executable, "-I", "-c", check],
        cwd=root,
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert sorted(path.name for path in sentinels.iterdir()) == []
