"""`mplint verify` on real-shaped training scripts, run as a user runs it (a subprocess).

Each script in tests/runtime/scripts/real/ is written the way public training scripts are
(pytorch/examples, nanoGPT, minGPT, GRPO-style loops), made tiny for a CPU.
"""

from __future__ import annotations

from tests.runtime.real import free_port, line_of, mplint_verify, python, real_script


# -- no false all-clear: training in worker processes, runs that verify nothing ------------------


def test_training_in_mp_spawn_workers_is_recorded_and_merged() -> None:
    run = mplint_verify("--format", "json", real_script("spawn_ddp.py"), "--", "--port", str(free_port()))

    [region] = run.findings("MP002")
    assert run.exit_code == 1, run.stderr
    assert (region["line"], region["verdict"]) == (line_of("spawn_ddp.py", "MP002"), "confirmed")
    # Both workers stopped after 2 steps each; the parent only spawned.
    assert "4 passes" in region["evidence"][0]
    assert (run.document["steps"], run.document["processes"]) == (2, 2)


def test_training_in_forked_multiprocessing_workers_is_recorded() -> None:
    run = mplint_verify("--format", "json", real_script("fork_workers.py"))

    [log_softmax] = run.findings("MP901")
    assert run.exit_code == 1, run.stderr
    assert (log_softmax["line"], log_softmax["verdict"]) == (line_of("fork_workers.py", "MP001"), "runtime-only")
    assert log_softmax["evidence"] == [
        f"aten._log_softmax ran on bfloat16 at {real_script('fork_workers.py')}:{log_softmax['line']}, 4 calls"
    ]
    assert run.document["steps"] == 2


def test_a_run_that_steps_no_optimizer_is_not_a_pass_and_says_why() -> None:
    run = mplint_verify(real_script("no_steps.py"))

    assert run.exit_code == 3
    assert "mplint verify: 0 optimizer steps recorded; no findings." in run.stderr
    assert "nothing was verified: no optimizer step was recorded (in the script or in any process it started)" in run.stderr


def test_json_is_one_object_that_tells_nothing_ran_from_clean() -> None:
    nothing = mplint_verify("--format", "json", real_script("no_steps.py"), "--", "--epochs", "3")
    clean = mplint_verify("--format", "json", real_script("no_steps.py"), "--", "--train")

    assert (nothing.exit_code, clean.exit_code) == (3, 0), nothing.stderr + clean.stderr
    for run in (nothing, clean):
        assert set(run.document) >= {
            "script", "argv", "device", "cuda", "ranks", "processes", "steps", "verified", "exit_status",
            "reason", "script_status", "duration_s", "mplint", "torch", "findings", "static_only",
        }  # fmt: skip
        assert (run.document["device"], run.document["cuda"]) == ("emulated-cuda", "emulated")
    assert (nothing.document["steps"], nothing.document["verified"], nothing.document["exit_status"]) == (0, False, 3)
    assert nothing.document["argv"] == ["--epochs", "3"]
    assert nothing.document["script_status"] == {
        "outcome": "finished", "exit_status": 0, "failure": None, "hint": None, "traceback": None
    }  # fmt: skip
    assert (clean.document["steps"], clean.document["verified"], clean.document["findings"]) == (2, True, [])
    assert clean.document["script_status"]["outcome"] == "stopped"


def test_help_documents_the_exit_statuses() -> None:
    run = mplint_verify("--help")

    assert "3  nothing was verified: no optimizer step was recorded" in run.stdout


# -- CUDA emulation that real scripts survive ------------------------------------------------------


def test_nanogpt_ddp_under_torchrun_runs_on_emulated_cuda() -> None:
    """set_device(f"cuda:{local_rank}"), nccl, DDP(device_ids=[local_rank]), fused AdamW, torch.compile."""
    command = [
        "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
        "--master-port", str(free_port()), "-m", "mplint", "verify", "--format", "json",
        real_script("nanogpt_train.py"), "--", "--dtype", "float16",
    ]  # fmt: skip
    run = python(*command)

    assert run.exit_code == 0, run.stderr
    document = run.document
    assert (document["ranks"], document["steps"], document["cuda"], document["compile"]) == (2, 2, "emulated", "eager")
    assert document["findings"] == [] and document["verified"]


def test_device_properties_generators_events_memory_stats_and_pinned_batches_work_on_emulated_cuda() -> None:
    run = mplint_verify("--format", "json", real_script("gpu_utils.py"))

    assert run.exit_code == 1, run.stderr
    [log_softmax] = run.findings("MP001")
    assert (log_softmax["line"], log_softmax["verdict"], log_softmax["device"]) == (
        line_of("gpu_utils.py", "MP001"),
        "confirmed",
        "emulated-cuda",
    )
    # The script's own prints (sent to stderr in JSON mode): the documented fake device, timings.
    assert "NVIDIA A100-SXM4-80GB (emulated by mplint verify): 80 GiB, 108 SMs" in run.stderr
    assert "step 0: " in run.stderr and " ms, peak 0 MiB" in run.stderr


def test_a_device_chosen_through_torch_accelerator_is_the_emulated_cuda() -> None:
    # CUDA's policy runs log_softmax in fp32 under autocast: nothing to report on CUDA.
    on_cuda = mplint_verify("--format", "json", real_script("accelerator_mnist.py"))
    # `--no-accel` configures the CPU: CPU autocast keeps log_softmax in bf16, and the run says where it fell.
    on_cpu = mplint_verify(real_script("accelerator_mnist.py"), "--", "--no-accel")

    assert on_cuda.exit_code == 0, on_cuda.stderr
    assert (on_cuda.document["findings"], on_cuda.document["steps"]) == ([], 2)
    assert on_cpu.exit_code == 1, on_cpu.stderr
    assert f"accelerator_mnist.py:{line_of('accelerator_mnist.py', 'log_softmax')}:1: MP901" in on_cpu.stdout
    assert "(on cpu)" in on_cpu.stdout
    assert "its device choice fell to the CPU" in on_cpu.stderr


def test_a_cuda_call_emulation_cannot_serve_says_so_and_suggests_cpu() -> None:
    graphs = mplint_verify(real_script("needs_a_gpu.py"))
    ipc = mplint_verify(real_script("needs_a_gpu.py"), "--", "--ipc")

    assert (graphs.exit_code, ipc.exit_code) == (2, 2)
    cpu_wheel = "RuntimeError: Tried to instantiate dummy base class CUDAGraph"
    cuda_wheel = "CUDA error: CUDA driver version is insufficient for CUDA runtime version"  # no GPU, no driver
    assert cpu_wheel in graphs.stderr or cuda_wheel in graphs.stderr
    hint = "mplint verify: this error comes from CUDA emulation (no GPU here): run with --device cpu"
    assert hint in graphs.stderr and hint in ipc.stderr
    assert (
        "EmulatedCudaError: torch.cuda.ipc_collect() needs a real GPU: mplint verify is emulating CUDA on this "
        "machine (no GPU) and cannot emulate it" in ipc.stderr
    )
    assert f'needs_a_gpu.py", line {line_of("needs_a_gpu.py", "ipc")}, in <module>' in ipc.stderr


def test_a_script_configured_for_the_cpu_runs_as_plain_python_does() -> None:
    """nanoGPT with device=cpu: its GradScaler("cuda") is disabled with python's warning, at the script's line."""
    run = mplint_verify(real_script("nanogpt_train.py"), "--", "--device", "cpu", "--dtype", "float16")

    assert run.exit_code == 0, run.stderr
    scaler_line = line_of("nanogpt_train.py", "scaler")
    assert (
        f"nanogpt_train.py:{scaler_line}: UserWarning: torch.cuda.amp.GradScaler is enabled, but CUDA is not "
        "available.  Disabling." in run.stderr
    )
    assert "its device choice fell to the CPU" in run.stderr


def test_a_scaler_built_before_the_model_is_placed_still_scales_on_emulated_cuda() -> None:
    run = mplint_verify("--format", "json", real_script("scaler_first.py"))

    assert run.exit_code == 0, run.stderr
    assert run.document["findings"] == [] and run.document["steps"] == 2
    assert "CUDA is not available" not in run.stderr


# -- words that are true ---------------------------------------------------------------------------


def test_a_cuda_region_on_a_cpu_run_is_not_checkable_there_not_refuted() -> None:
    run = mplint_verify("--device", "cpu", "--format", "json", real_script("cuda_region_fallback.py"))

    [region] = run.findings("MP002")
    assert run.exit_code == 3, run.stderr
    assert region["verdict"] == "not-applicable"
    assert region["evidence"][0].startswith("not checkable here (CUDA region on a CPU run)")
    assert run.document["reason"].startswith("1 finding could not be checked on cpu")
    # torch's own warning about the disabled region, shown at the script's line (not at mplint's hook).
    line = line_of("cuda_region_fallback.py", "MP002")
    assert f"cuda_region_fallback.py:{line}: UserWarning: CUDA is not available or torch_xla is imported." in (
        run.stderr
    )


def test_mp903_points_where_the_script_builds_its_own_optimizer_class() -> None:
    run = mplint_verify("--format", "json", real_script("custom_optimizer.py"))

    findings = run.findings("MP003") + run.findings("MP903")
    assert run.exit_code == 1, run.stderr
    assert [finding["line"] for finding in findings] == [line_of("custom_optimizer.py", "optimizer")]
    assert findings[0]["verdict"] in ("confirmed", "runtime-only")


def test_mp902_points_at_the_with_that_entered_the_region() -> None:
    run = mplint_verify("--format", "json", real_script("with_ctx.py"))

    [backward] = run.findings("MP902")
    assert run.exit_code == 1, run.stderr
    assert backward["line"] == line_of("with_ctx.py", "with")
    assert f"float16 autocast at {real_script('with_ctx.py')}:{backward['line']}" in backward["evidence"][0]


def test_a_bare_except_that_catches_the_stop_is_told_and_later_steps_are_refused() -> None:
    text = mplint_verify(real_script("bare_except.py"))
    run = mplint_verify("--format", "json", real_script("bare_except.py"))

    [log_softmax] = run.findings("MP001")
    assert run.exit_code == 1, run.stderr
    assert log_softmax["evidence"] == [
        f"aten._log_softmax ran on bfloat16 at {real_script('bare_except.py')}:{log_softmax['line']}, 2 calls"
    ]
    assert (run.document["steps"], run.document["steps_refused"]) == (2, 10)
    assert "skipped 11 batches" in run.stderr  # the stop itself, then 10 refused steps
    assert (
        "the script caught mplint's stop after step 2 (a bare `except:` or `except BaseException`) and kept going: "
        "10 later optimizer steps were refused" in text.stderr
    )


def test_sys_exit_with_a_failure_shows_where_the_script_exited() -> None:
    run = mplint_verify("tests/runtime/scripts/exits.py")

    assert run.exit_code == 2
    assert "mplint verify: the script called sys.exit(3); its own traceback follows:" in run.stderr
    assert 'exits.py", line 14, in <module>\n    sys.exit(3)' in run.stderr


def test_an_error_raised_through_mplints_kernels_shows_only_the_scripts_frames() -> None:
    run = mplint_verify(real_script("banned_in_region.py"))

    assert run.exit_code == 2
    assert f'banned_in_region.py", line {line_of("banned_in_region.py", "bce")}, in <module>' in run.stderr
    assert "RuntimeError: torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast" in (
        run.stderr
    )
    assert "mplint/" not in run.stderr.replace("mplint verify", "").replace("mplint:", "")
    assert "_python_dispatch.py" not in run.stderr and "torch/overrides.py" not in run.stderr


def test_unsafe_fixes_are_shown_only_with_unsafe_fixes() -> None:
    hidden = mplint_verify("--format", "json", "tests/runtime/scripts/bf16_policy.py")
    shown = mplint_verify("--format", "json", "--unsafe-fixes", "tests/runtime/scripts/bf16_policy.py")
    text = mplint_verify("tests/runtime/scripts/bf16_policy.py")

    assert "fix" not in hidden.findings("MP001")[0]
    assert shown.findings("MP001")[0]["fix"]["applicability"] == "unsafe"
    assert " [*]" not in text.stdout


def test_static_only_findings_are_shown_and_counted_in_the_summary() -> None:
    run = mplint_verify(real_script("nanogpt_train.py"), "--", "--compile", "1")

    assert run.exit_code == 0, run.stderr
    assert f"{real_script('nanogpt_train.py')}:{line_of('nanogpt_train.py', 'scaler')}:10: MP203" in run.stdout
    assert "1 static-only finding (MP203) shown as `mplint` reports them: the run does not check them." in run.stderr
    assert "torch.compile (1 call) was run eagerly" in run.stderr


def test_a_missing_script_is_one_line() -> None:
    run = mplint_verify("trian.py")

    assert (run.exit_code, run.stderr) == (2, "mplint: trian.py: no such file or directory\n")


# -- what the trial on public scripts tripped over (bench/verify_trial.md, P1-P6) ---------------------


def test_cuda_seeding_and_rng_state_are_served_by_the_cpu_generator() -> None:
    """llm.c seeds with `torch.cuda.manual_seed(42)` (P1); torch warnings point at the script's line (P6)."""
    run = mplint_verify("--format", "json", real_script("seeded_gpt.py"))

    [region] = run.findings("MP002")
    assert run.exit_code == 1, run.stderr
    assert (region["line"], region["verdict"]) == (line_of("seeded_gpt.py", "MP002"), "confirmed")
    assert run.document["steps"] == 2
    assert "cuda initial seed 42" in run.stderr and "rng ok" in run.stderr
    warns = line_of("seeded_gpt.py", "warns")
    assert f"seeded_gpt.py:{warns}: UserWarning: To copy construct from a tensor" in run.stderr
    assert f"seeded_gpt.py:{warns}: UserWarning: std(): degrees of freedom is <= 0" in run.stderr
    assert "emulate.py" not in run.stderr and "recorder.py" not in run.stderr


def test_torch_load_onto_cuda_and_cuda_device_contexts_work_on_emulated_cuda() -> None:
    """airbench loads its data with `map_location=torch.device("cuda")`: `isinstance(x, torch.cuda.device)` (P2)."""
    run = mplint_verify("--format", "json", real_script("checkpoint_loader.py"))

    assert run.exit_code == 0, run.stderr
    assert (run.document["steps"], run.document["findings"]) == (2, [])
    assert run.document["script_status"]["outcome"] == "stopped"


def test_ddp_tutorial_with_nccl_imported_by_name_and_bare_device_indices_runs_in_spawn_workers() -> None:
    """`from torch.distributed import init_process_group` bound before mplint patches (P3);
    `model.to(gpu_id)`, `tensor.to(rank)`, `.cuda(rank)`, `torch.device(rank)`, `device_ids=[rank]` (P4)."""
    run = mplint_verify("--format", "json", real_script("ddp_tutorial.py"), "--", "--port", str(free_port()))

    [region] = run.findings("MP002")
    assert run.exit_code == 1, run.stderr
    assert (region["line"], region["verdict"]) == (line_of("ddp_tutorial.py", "MP002"), "confirmed")
    assert (run.document["steps"], run.document["processes"]) == (2, 1)


def test_a_spawn_workers_error_shows_the_scripts_frames_and_the_emulation_hint() -> None:
    """A worker's own bug: its traceback holds no mplint frame (P5); a call emulation cannot serve: the hint."""
    bug = mplint_verify(
        "--format", "json", real_script("ddp_tutorial.py"), "--", "--port", str(free_port()), "--in-features", "7"
    )
    ipc = mplint_verify("--format", "json", real_script("ddp_tutorial.py"), "--", "--port", str(free_port()), "--ipc")

    assert (bug.exit_code, ipc.exit_code) == (2, 2), bug.stderr + ipc.stderr
    trace = bug.document["script_status"]["traceback"]
    assert f'ddp_tutorial.py", line {line_of("ddp_tutorial.py", "forward")}, in _run_batch' in trace
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied (32x7 and 20x1)" in trace
    assert "mplint/" not in trace and "torch/overrides.py" not in trace
    assert bug.document["script_status"]["hint"] is None  # the script's bug, not emulation's
    ipc_status = ipc.document["script_status"]
    assert ipc_status["hint"].startswith("this error comes from CUDA emulation (no GPU here): run with --device cpu")
    assert f'ddp_tutorial.py", line {line_of("ddp_tutorial.py", "ipc")}, in main' in ipc_status["traceback"]
    assert "mplint/runtime" not in ipc_status["traceback"]
