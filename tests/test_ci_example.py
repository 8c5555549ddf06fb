"""examples/ci/mplint.yml: the verify job's command is one `mplint verify` accepts, and the job uploads
what it writes and fails on what verify's exit status says."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from mplint.runtime.command import verify

WORKFLOW = Path(__file__).resolve().parents[1] / "examples" / "ci" / "mplint.yml"


def test_the_gpu_job_reports_uploads_and_fails_on_a_finding() -> None:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["verify-on-gpu"]["steps"]
    [run] = [step for step in steps if step.get("id") == "verify"]
    command = next(line for line in run["run"].replace("\\\n", " ").splitlines() if "mplint verify" in line)
    words = shlex.split(command.split(">")[0])
    arguments = words[words.index("verify") + 1 :]
    params = verify.make_context("verify", arguments).params  # raises on an option verify does not have
    assert (params["output_format"], params["report_path"], params["device"]) == ("sarif", "mplint-report.html", "cuda")
    assert command.rstrip().endswith("> mplint-verify.sarif")
    uploads = {step["uses"].split("@")[0]: step for step in steps if "uses" in step}
    assert uploads["actions/upload-artifact"]["with"]["path"] == "mplint-report.html"
    assert uploads["github/codeql-action/upload-sarif"]["with"]["sarif_file"] == "mplint-verify.sarif"
    assert uploads["actions/upload-artifact"]["if"] == uploads["github/codeql-action/upload-sarif"]["if"] == "always()"
    [fail] = [step for step in steps if step.get("if") == "steps.verify.outputs.status != '0'"]
    assert "exit 1" in fail["run"]
