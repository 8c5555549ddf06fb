"""`mplint verify` end to end on CPU: real scripts, real static findings, verdicts and exit codes."""

from __future__ import annotations

import pytest

from tests.runtime.support import marked_line, script, verify, verify_json


def findings_by_code(findings: list[dict], code: str) -> list[dict]:
    return [finding for finding in findings if finding["code"] == code]


def test_bf16_log_softmax_is_confirmed_with_evidence() -> None:
    exit_code, findings = verify_json(script("bf16_policy.py"))

    [log_softmax] = findings_by_code(findings, "MP001")
    assert exit_code == 1
    assert log_softmax["line"] == marked_line("bf16_policy.py", "MP001")
    assert log_softmax["verdict"] == "confirmed"
    assert log_softmax["device"] == "emulated-cuda"
    assert log_softmax["evidence"] == [f"aten._log_softmax ran on bfloat16 at tests/runtime/scripts/bf16_policy.py:{log_softmax['line']}, 2 calls"]


def test_cpu_autocast_log_softmax_is_confirmed_on_cpu_in_an_emulated_run() -> None:
    exit_code, findings = verify_json(script("regions.py"))

    [log_softmax] = findings_by_code(findings, "MP001")
    assert exit_code == 1
    assert (log_softmax["line"], log_softmax["verdict"], log_softmax["device"]) == (marked_line("regions.py", "MP001 on CPU"), "confirmed", "cpu")


def test_fp16_autocast_without_scaler_is_confirmed_with_measured_underflow() -> None:
    exit_code, findings = verify_json(script("fp16_no_scaler.py"))

    [no_scaler] = findings_by_code(findings, "MP002")
    assert exit_code == 1
    assert (no_scaler["line"], no_scaler["verdict"]) == (marked_line("fp16_no_scaler.py", "MP002"), "confirmed")
    measured = no_scaler["evidence"][-1]
    assert measured.startswith("measured: ") and not measured.startswith("measured: 0.00%")


@pytest.mark.filterwarnings("ignore:`torch.cuda.amp:FutureWarning")
def test_fp16_with_scaler_written_for_cuda_runs_emulated_and_is_clean() -> None:
    result = verify("--device", "emulate-cuda", script("fp16_scaler.py"))

    assert result.exit_code == 0, result.output
    assert "MP002" not in result.stdout and "MP902" not in result.stdout
    assert "2 optimizer steps recorded; no findings" in result.stderr


def test_adamw_over_half_params_is_confirmed_with_state_dtypes_and_stops_despite_except_exception() -> None:
    exit_code, findings = verify_json("--steps", "3", script("half_adamw.py"))

    [optimizer] = findings_by_code(findings, "MP003")
    assert exit_code == 1
    assert optimizer["verdict"] == "confirmed"
    assert optimizer["evidence"][-1] == "after 3 steps its state was: exp_avg float16, exp_avg_sq float16, step float32"


def test_runtime_only_problems_get_their_own_codes() -> None:
    # The static pass cannot see a region entered by hand; the run can.
    result = verify("--format", "json", script("raises.py"))

    assert '"code": "MP902"' in result.stdout
    assert '"verdict": "runtime-only"' in result.stdout


def test_script_that_raises_reports_its_own_traceback_and_leaves_torch_as_it_was(torch_left_as_it_was) -> None:
    result = verify(script("raises.py"))

    assert result.exit_code == 2
    assert "the script failed; its own traceback follows" in result.stderr
    assert 'raises.py", line 13, in <module>' in result.stderr
    assert "runpy" not in result.stderr and "mplint/runtime" not in result.stderr
    assert "ValueError: bad batch: labels out of range" in result.stderr
    torch_left_as_it_was()


def test_script_that_exits_nonzero_is_a_failure_and_leaves_torch_as_it_was(torch_left_as_it_was) -> None:
    result = verify(script("exits.py"))

    assert result.exit_code == 2
    assert "the script called sys.exit(3)" in result.stderr
    assert "1 optimizer step recorded" in result.stderr
    torch_left_as_it_was()


def test_script_past_timeout_is_stopped_and_leaves_torch_as_it_was(torch_left_as_it_was) -> None:
    result = verify("--timeout", "1", script("hangs.py"))

    assert result.exit_code == 2
    assert "the script ran past --timeout 1s" in result.stderr
    torch_left_as_it_was()


def test_stopping_after_n_steps_leaves_torch_as_it_was(torch_left_as_it_was) -> None:
    verify(script("regions.py"))

    torch_left_as_it_was()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.py"], "mplint: missing.py: no such file or directory\n"),
        (["--device", "tpu", "x.py"], "'tpu' is not one of"),
        (["--steps", "0", "x.py"], "0 is not in the range"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(args: list[str], message: str) -> None:
    result = verify(*args)

    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_project_files_the_script_imports_are_linted_and_judged() -> None:
    exit_code, findings = verify_json(script("imports_helper.py"))

    [log_softmax] = findings_by_code(findings, "MP001")
    assert exit_code == 1
    assert (log_softmax["path"], log_softmax["line"], log_softmax["verdict"]) == (
        "tests/runtime/scripts/policy_math.py",
        marked_line("policy_math.py", "MP001"),
        "confirmed",
    )


def test_mean_reduced_cross_entropy_under_fp16_autocast_is_not_a_runtime_log_prob_finding() -> None:
    # CUDA autocast runs cross_entropy's inner log_softmax in fp16 (it is not on the fp32 list), but
    # a mean-reduced loss is the standard training loss: the static MP001 leaves it alone, and so
    # must the runtime-only MP901, or every fp16 classifier would be reported.
    exit_code, findings = verify_json(script("fp16_classifier.py"))

    assert findings_by_code(findings, "MP901") == []
    assert exit_code == 0
