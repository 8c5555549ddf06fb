"""`mplint verify` on real-shaped training scripts, run as a user runs it (a subprocess).

Each script in tests/runtime/scripts/real/ is written the way public training scripts are
(pytorch/examples, nanoGPT, minGPT, GRPO-style loops), made tiny for a CPU.
"""

from __future__ import annotations

from tests.runtime.real import free_port, line_of, mplint_verify, real_script


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
        "outcome": "finished", "exit_status": 0, "failure": None, "traceback": None
    }  # fmt: skip
    assert (clean.document["steps"], clean.document["verified"], clean.document["findings"]) == (2, True, [])
    assert clean.document["script_status"]["outcome"] == "stopped"


def test_help_documents_the_exit_statuses() -> None:
    run = mplint_verify("--help")

    assert "3  nothing was verified: no optimizer step was recorded" in run.stdout
