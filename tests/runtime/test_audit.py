"""The Python API (`mplint.runtime.audit`) and the pytest plugin's `mp_audit` fixture."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mplint.runtime import audit


def test_audit_reports_what_ran_in_the_block(torch_left_as_it_was) -> None:
    policy = nn.Linear(8, 4).to(torch.bfloat16)

    with audit(device="emulate-cuda", static=False) as report:
        F.log_softmax(policy(torch.randn(2, 8, dtype=torch.bfloat16)), dim=-1)

    [finding] = report.problems
    assert (finding.code, finding.verdict, finding.device) == ("MP901", "runtime-only", "emulated-cuda")
    with pytest.raises(AssertionError, match="MP901"):
        report.assert_clean()
    torch_left_as_it_was()


def test_audit_of_a_cuda_autocast_step_is_clean_on_emulated_cuda() -> None:
    model = nn.Linear(8, 4)
    optimizer = torch.optim.AdamW(model.parameters())

    with audit(device="emulate-cuda", static=False) as report:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            log_probs = F.log_softmax(model(torch.randn(2, 8)), dim=-1)
        log_probs[:, 0].mean().backward()
        optimizer.step()

    report.assert_clean()


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())

    assert project["project"]["entry-points"]["pytest11"] == {"mplint": "mplint.runtime.pytest_plugin"}


def test_mp_audit_fixture_fails_an_unclean_training_step(tmp_path) -> None:
    (tmp_path / "test_training.py").write_text(
        textwrap.dedent(
            """
            import torch
            import torch.nn.functional as F
            from torch import nn

            def test_fp32_step_is_clean(mp_audit):
                with mp_audit(static=False) as report:
                    F.log_softmax(nn.Linear(8, 4)(torch.randn(2, 8)), dim=-1)
                report.assert_clean()

            def test_bf16_step_is_not(mp_audit):
                with mp_audit(static=False) as report:
                    F.log_softmax(nn.Linear(8, 4).bfloat16()(torch.randn(2, 8).bfloat16()), dim=-1)
                report.assert_clean()
            """
        )
    )
    # Load the plugin by module whether or not its entry point is installed.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:mplint", "-p", "mplint.runtime.pytest_plugin", "--mplint-device", "cpu"]

    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert "1 failed, 1 passed" in done.stdout, done.stdout + done.stderr
    assert "MP901 [runtime-half-log-softmax]" in done.stdout
