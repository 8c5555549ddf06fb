"""`mplint verify --report`: the examples' reports opened in headless Chromium, each section and plot checked
against what the run observed. Screenshots go to tests/output/screenshots/ for a person to look at."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.browser import Element, find_browser, load, parse, screenshot
from tests.runtime.support import verify

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
MAX_REPORT_BYTES = 2 * 2**20  # a 20-step run of an example


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium found (chromium, chromium-browser, google-chrome): `apt-get install -y chromium`")
    return found


@dataclass(frozen=True)
class OpenedReport:
    document: dict[str, Any]  # `verify --format json` of the same run: what the run observed and judged
    data: dict[str, Any]  # the data embedded in the page
    page: Path
    tree: Element
    console: tuple[str, ...]


def open_report(
    tmp_path: Path, browser: str, name: str, script: str, steps: int, *script_args: str
) -> OpenedReport:
    page = tmp_path / f"{name}.html"
    result = verify("--format", "json", "--steps", str(steps), "--report", str(page), str(EXAMPLES / script), "--", *script_args)
    assert result.exit_code in (0, 1), result.output
    text = page.read_text(encoding="utf-8")
    embedded = re.search(r'<script type="application/json" id="mplint-data">(.*?)</script>', text, re.S)
    assert embedded is not None
    loaded = load(browser, page, tmp_path / "profile")
    shot = screenshot(browser, page, tmp_path / "profile", name, height=3200)
    assert shot.stat().st_size > 10_000
    return OpenedReport(json.loads(result.stdout), json.loads(embedded.group(1)), page, parse(loaded.dom), loaded.console)


@pytest.fixture(scope="module")
def fp16_without_scaler(tmp_path_factory: pytest.TempPathFactory, browser: str) -> OpenedReport:
    return open_report(tmp_path_factory.mktemp("fp16"), browser, "train_fp16", "train_fp16.py", 20)


@pytest.fixture(scope="module")
def fp16_with_scaler(tmp_path_factory: pytest.TempPathFactory, browser: str) -> OpenedReport:
    return open_report(
        tmp_path_factory.mktemp("scaler"), browser, "train_clean_fp16", "train_clean.py", 4, "--precision", "fp16"
    )


def tiny_lm_parameters() -> dict[str, int]:
    """The example model's parameters and their sizes, built here (the report names them the same)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        from tiny_lm import TinyLM
        from toy_task import VOCAB_SIZE
    finally:
        sys.path.remove(str(EXAMPLES))
    return {name: param.numel() for name, param in TinyLM(VOCAB_SIZE).named_parameters()}


def cells(row: Element) -> list[str]:
    return [cell.text().strip() for cell in row.find_all("td")]


def test_the_report_is_small_self_contained_and_runs_without_console_errors(
    fp16_without_scaler: OpenedReport, fp16_with_scaler: OpenedReport
) -> None:
    for report in (fp16_without_scaler, fp16_with_scaler):
        assert report.console == ()
        assert report.tree.find_all("body", data_rendered="true")
        text = report.page.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)  # nothing fetched
        assert "@import" not in text and "url(" not in text
    assert fp16_without_scaler.page.stat().st_size < MAX_REPORT_BYTES  # 20 steps


def test_a_console_error_on_the_page_would_be_caught(tmp_path: Path, browser: str) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>console.error('drawn wrong'); null.x;</script></body></html>")
    console = load(browser, page, tmp_path / "profile").console
    assert any("drawn wrong" in line for line in console)
    assert any("Uncaught TypeError" in line for line in console)


def test_the_run_section_says_where_it_ran_and_that_cuda_was_emulated(fp16_without_scaler: OpenedReport) -> None:
    report, document = fp16_without_scaler.tree, fp16_without_scaler.document
    facts = {dd.attrs["data-fact"]: dd.text() for dd in report.by_id("run-facts").find_all("dd")}
    assert facts["device"] == document["device"] == "emulated-cuda"
    assert facts["CUDA"].startswith("emulated on the CPU")
    assert facts["device name"].startswith("NVIDIA A100-SXM4-80GB (emulated")
    assert facts["optimizer steps recorded"] == f"{document['steps']} of --steps 20" == "20 of --steps 20"
    assert facts["exit status"].startswith(str(document["exit_status"]))
    assert report.by_id("summary").text() == "20 optimizer steps recorded on emulated-cuda; 1 confirmed; exit status 1."


def test_each_finding_shows_its_verdict_evidence_and_source_line(fp16_without_scaler: OpenedReport) -> None:
    report, document = fp16_without_scaler.tree, fp16_without_scaler.document
    judged = sorted([*document["findings"], *document["static_only"]], key=lambda f: (f["path"], f["line"], f["column"]))
    shown = report.find_all("div", class_="finding")
    assert [(div.attrs["data-code"], div.attrs["data-verdict"]) for div in shown] == [
        (finding["code"], finding.get("verdict", "static only")) for finding in judged
    ]
    [mp002] = [div for div in shown if div.attrs["data-code"] == "MP002"]
    [finding] = [finding for finding in judged if finding["code"] == "MP002"]
    assert [item.text() for item in mp002.find_all("li")] == finding["evidence"]
    [highlighted] = mp002.find_all("span", class_="hit")
    source = (REPO / finding["path"]).read_text().splitlines()[finding["line"] - 1]
    assert highlighted.attrs["data-line"] == str(finding["line"])
    assert highlighted.text() == f"{finding['line']}{source}"
    assert "torch.autocast" in source


def test_the_dtype_timeline_shows_each_line_op_and_dtype_per_step(fp16_without_scaler: OpenedReport) -> None:
    plot = fp16_without_scaler.tree.by_id("timeline-plot")
    rows = {(row.attrs["data-line"], row.attrs["data-op"], row.attrs["data-dtype"]): row for row in plot.find_all("g")
            if "data-op" in row.attrs}
    assert len(rows) == len(fp16_without_scaler.data["timeline"]["rows"]) > 0
    # Under CUDA's fp16 autocast policy (emulated) the model's matmuls ran in float16 and the loss in float32.
    head = rows[("examples/tiny_lm.py:36", "linear", "float16")]
    loss = rows[("examples/train_fp16.py:46", "cross_entropy", "float32")]
    for row in (head, loss):
        steps = [rect.attrs["data-step"] for rect in row.find_all("rect")]
        assert steps == [str(step) for step in range(1, 21)]
        assert {rect.attrs["data-calls"] for rect in row.find_all("rect")} == {"1"}
    assert not [key for key in rows if key[1] == "linear" and key[2] == "float32"]  # no fp32 matmul under fp16 autocast
    legend = [text.text() for text in plot.find_all("g", class_="legend")[0].find_all("text")]
    assert legend == ["float32", "float16"]
    assert any(text.text() == "optimizer step (cells: calls per step)" for text in plot.find_all("text"))


def test_gradient_underflow_per_parameter_with_a_histogram_each(fp16_without_scaler: OpenedReport) -> None:
    report, document = fp16_without_scaler.tree, fp16_without_scaler.document
    parameters = tiny_lm_parameters()
    # Of --steps 20, gradients are measured at the first ten steps, every tenth and the last; the page says which.
    measured = [*range(1, 11), 20]
    assert fp16_without_scaler.data["gradients"]["measured_steps"] == measured
    assert report.by_id("gradient-steps").text() == "Gradients at optimizer steps 1–10, 20, per parameter"
    assert report.by_id("gradient-sampling").text().startswith("Measured at each of the first 10 optimizer steps")
    rows = [cells(row) for row in report.by_id("gradient-table").find_all("tr")[1:]]
    assert [row[0] for row in rows] == list(parameters)
    for row in rows:
        assert (row[1], row[3], row[4]) == ("float32", "11", f"{parameters[row[0]] * len(measured):,}")
    plots = report.by_id("gradient-plots").find_all("svg")
    assert [plot.attrs["data-param"] for plot in plots] == list(parameters)
    for plot in plots:
        assert plot.find_all("rect", class_="bar")[1:], plot.attrs["data-param"]  # some non-zero magnitudes drawn
        assert len(plot.find_all("line", class_="limit")) == 3
        texts = [text.text() for text in plot.find_all("text")]
        assert "|gradient| (log2 scale; share of values, %)" in texts and "fp16 min normal" in texts
    # The recorder's own measurement inside the unscaled backward, as the finding's evidence states it.
    [underflow] = [cells(row) for row in report.by_id("underflow-table").find_all("tr")[1:]]
    [mp002] = [finding for finding in document["findings"] if finding["code"] == "MP002"]
    measured = re.search(r"measured: ([\d.]+%) of fp16 gradient values \(([\d,]+) of ([\d,]+)\)", mp002["evidence"][-1])
    assert measured is not None
    assert (underflow[0], underflow[1]) == ("examples/train_fp16.py:48", "20")
    assert (underflow[4], underflow[3], underflow[2]) == measured.groups()


def test_an_unscaled_run_has_no_scale_plot_and_its_optimizer_state_is_shown(fp16_without_scaler: OpenedReport) -> None:
    report = fp16_without_scaler.tree
    assert report.by_id("scaler-body").text() == "No enabled GradScaler stepped in this run."
    [optimizer] = [cells(row) for row in report.by_id("optimizer-table").find_all("tr")[1:]]
    line = next(n for n, text in enumerate((EXAMPLES / "train_fp16.py").read_text().splitlines(), 1) if "AdamW(" in text)
    count = sum(1 for _ in tiny_lm_parameters())
    assert optimizer == [
        "AdamW", f"examples/train_fp16.py:{line}", "emulated-cuda", "20", f"{count} float32", f"{count} float32",
        "exp_avg float32, exp_avg_sq float32, step float32",
    ]


def test_the_scale_plot_shows_each_gradscaler_step(fp16_with_scaler: OpenedReport) -> None:
    report = fp16_with_scaler.tree
    plot = report.by_id("scaler-plot")
    points = plot.find_all(class_="point")
    # GradScaler's default initial scale, 2**16, kept over 4 steps with finite gradients (growth waits 2000 steps).
    assert [(point.attrs["data-call"], point.attrs["data-scale"]) for point in points] == [
        (str(call), "65536") for call in range(1, 5)
    ]
    assert not plot.find_all(class_="skipped")
    assert report.by_id("scaler-summary").text() == "4 GradScaler steps, 0 skipped (inf/nan gradients); last scale 65536."
    texts = [text.text() for text in plot.find_all("text")]
    assert {"GradScaler.step call", "loss scale (log2)", "scale", "skipped step", "2^16"} <= set(texts)
    assert report.find_all("div", class_="finding") == []
    assert report.by_id("findings-body").text() == "No findings."
