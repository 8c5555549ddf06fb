"""The verifier on scripts that misbehave: interrupted, reading stdin, forking DataLoader
workers, written as part of a package. Each gives a clear report and the right exit code, and
leaves torch exactly as it found it (see `torch_fingerprint`). Scripts that raise, call
`sys.exit(3)` or run past `--timeout` are covered in test_verify.py.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mplint.runtime.command import verify as verify_command
from mplint.runtime.facade import is_emulation_error
from tests.runtime.support import marked_line, verify
from tests.runtime.support import script as scripts_path

HARDENING = "hardening/"


def script(name: str) -> str:
    return scripts_path(HARDENING + name)


def confirmed_lines(output: str, code: str) -> list[int]:
    return [
        int(line.split(":")[1])
        for line in output.splitlines()
        if f" {code} [" in line and "[confirmed:" in line
    ]


def test_a_keyboard_interrupt_is_a_failure_with_the_scripts_traceback(
    torch_left_as_it_was,
) -> None:
    result = verify(script("interrupted.py"))

    assert result.exit_code == 2
    assert "the script failed; its own traceback follows" in result.stderr
    assert 'interrupted.py", line 12, in <module>' in result.stderr
    assert "mplint verify: 1 optimizer step recorded; no findings.\n" in result.stderr
    assert "KeyboardInterrupt" in result.stderr
    assert "Aborted" not in result.output
    torch_left_as_it_was()


def test_a_script_reads_its_own_stdin(torch_left_as_it_was) -> None:
    result = CliRunner().invoke(
        verify_command,
        [script("reads_stdin.py")],
        input="0.01\n",
        catch_exceptions=False,
    )

    assert result.exit_code == 1
    assert confirmed_lines(result.stdout, "MP001") == [
        marked_line(HARDENING + "reads_stdin.py", "MP001")
    ]
    torch_left_as_it_was()


def test_a_script_whose_stdin_is_empty_fails_with_its_own_error(
    torch_left_as_it_was,
) -> None:
    result = CliRunner().invoke(
        verify_command, [script("reads_stdin.py")], input="", catch_exceptions=False
    )

    assert result.exit_code == 2
    assert "ValueError: could not convert string to float: ''" in result.stderr
    torch_left_as_it_was()


def test_dataloader_workers_do_not_disturb_the_run(torch_left_as_it_was) -> None:
    result = verify("--timeout", "120", script("dataloader_workers.py"))

    assert result.exit_code == 1, result.stderr
    assert confirmed_lines(result.stdout, "MP001") == [
        marked_line(HARDENING + "dataloader_workers.py", "MP001")
    ]
    assert "2 optimizer steps recorded" in result.stderr
    torch_left_as_it_was()


def test_a_relative_import_fails_as_python_would_and_says_so(
    torch_left_as_it_was,
) -> None:
    result = verify(script("trainer/train.py"))

    assert result.exit_code == 2
    assert 'train.py", line 6, in <module>' in result.stderr
    assert (
        "ImportError: attempted relative import with no known parent package"
        in result.stderr
    )
    assert "runpy" not in result.stderr
    torch_left_as_it_was()


def test_an_internal_error_names_the_script_and_asks_for_a_report(
    monkeypatch, torch_left_as_it_was
) -> None:
    from mplint.runtime import join

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyError("aten::mm")

    monkeypatch.setattr(join, "join", crash)

    result = verify(script("interrupted.py"))

    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith(
        f"mplint: internal error while verifying {script('interrupted.py')}: KeyError: 'aten::mm'; "
        "please report this at "
    )
    torch_left_as_it_was()


@pytest.mark.parametrize(
    "message",
    [
        "Torch not compiled with CUDA enabled",  # the CPU wheel's lazy initialisation
        "Tried to instantiate dummy base class CUDAGraph",  # the CPU wheel's stand-in classes
        # A CUDA wheel on a machine without a GPU (CI runners that `pip install torch`):
        "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed a driver",
        "No CUDA GPUs are available",
        "CUDA error: CUDA driver version is insufficient for CUDA runtime version",  # torch.cuda.CUDAGraph()
    ],
)
def test_what_torch_says_without_a_gpu_is_an_emulation_limit(message: str) -> None:
    assert is_emulation_error(RuntimeError(message))
    assert is_emulation_error(ValueError("the script's own words")) is False
