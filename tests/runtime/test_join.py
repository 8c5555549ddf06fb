"""Verdicts from real runs joined with hand-made static findings (independent of the rules)."""

from __future__ import annotations

import pytest

from mplint.findings import Finding
from mplint.runtime.join import join
from mplint.runtime.observations import Observations, merge
from mplint.runtime.runner import Outcome, run_script
from tests.runtime.support import marked_line, script

NAMES = {"MP001": "uncast-log-softmax", "MP002": "fp16-autocast-without-scaler", "MP003": "optimizer-on-half-params"}


def static_finding(code: str, name: str, line: int) -> Finding:
    return Finding(code, NAMES[code], script(name), line, 1, line, 80, "static claim")


@pytest.fixture(scope="module")
def regions_run() -> Observations:
    run = run_script(script("regions.py"), device="emulate-cuda")
    assert run.outcome is Outcome.STOPPED
    return run.observations


def verdict(finding: Finding) -> tuple[str | None, str | None]:
    return finding.verdict, finding.device


def test_log_softmax_is_refuted_in_an_emulated_cuda_region_and_confirmed_in_a_cpu_one(regions_run) -> None:
    cuda_line, cpu_line = marked_line("regions.py", "MP001 on CUDA"), marked_line("regions.py", "MP001 on CPU")

    on_cuda, on_cpu = join([static_finding("MP001", "regions.py", cuda_line), static_finding("MP001", "regions.py", cpu_line)], regions_run)

    assert verdict(on_cuda) == ("refuted", "emulated-cuda")
    assert on_cuda.evidence == (f"aten._log_softmax ran on float32 at tests/runtime/scripts/regions.py:{cuda_line}, 2 calls",)
    assert verdict(on_cpu) == ("confirmed", "cpu")


def test_a_static_finding_on_a_line_that_never_ran_is_not_reached(regions_run) -> None:
    [finding] = [f for f in join([static_finding("MP001", "regions.py", 1)], regions_run) if f.code == "MP001"]

    assert finding.verdict == "not-reached"


def test_what_the_static_pass_missed_is_runtime_only(regions_run) -> None:
    [finding] = join([], regions_run)

    assert (finding.code, finding.line, finding.verdict) == ("MP901", marked_line("regions.py", "MP001 on CPU"), "runtime-only")


def test_a_bf16_region_refutes_the_missing_scaler_claim(regions_run) -> None:
    autocast_line = marked_line("regions.py", "MP001 on CUDA") - 1

    [finding] = [f for f in join([static_finding("MP002", "regions.py", autocast_line)], regions_run) if f.code == "MP002"]

    assert finding.verdict == "refuted"
    assert "ran as bfloat16: no float16 gradients" in finding.evidence[0]


def test_fp32_params_refute_the_half_optimizer_claim(regions_run) -> None:
    optimizer_line = marked_line("regions.py", "AdamW")

    [finding] = [f for f in join([static_finding("MP003", "regions.py", optimizer_line)], regions_run) if f.code == "MP003"]

    assert finding.verdict == "refuted"
    assert finding.evidence[0].endswith("was built over 8 params (8 float32)")


def test_a_scaled_backward_refutes_the_missing_scaler_claim() -> None:
    run = run_script(script("fp16_scaler.py"), device="emulate-cuda")
    autocast_line = marked_line("fp16_scaler.py", "autocast")

    [finding] = join([static_finding("MP002", "fp16_scaler.py", autocast_line)], run.observations)

    assert finding.verdict == "refuted"
    assert "started from an enabled GradScaler.scale" in finding.evidence[0]


def test_merging_ranks_adds_counts_and_collapses_identical_records(regions_run) -> None:
    merged = merge([regions_run, regions_run])

    assert merged.ranks == 2
    assert dict(merged.op_calls) == {call: 2 * count for call, count in regions_run.op_calls}
    assert merged.optimizers == regions_run.optimizers
    [finding] = join([], merged)
    assert finding.evidence[0].endswith(", 4 calls")
