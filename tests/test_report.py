"""Reporters print findings as given: one text line each, or a JSON array with stable keys."""

from __future__ import annotations

import json

import pytest

from mplint.findings import Applicability, Edit, Finding, Fix, Severity
from mplint.report import FORMATS, renderer
from mplint.report import json as json_report
from mplint.report import text as text_report

UNCAST = Finding(
    code="MP001",
    name="uncast-log-softmax",
    path="rl/ppo.py",
    line=42,
    column=12,
    end_line=42,
    end_column=49,
    message="log_softmax on bfloat16 logits (from `policy`, cast at rl/ppo.py:5); "
    "cast with .float() first",
)
FIXABLE = Finding(
    code="MP001",
    name="uncast-log-softmax",
    path="rl/ppo.py",
    line=57,
    column=8,
    end_line=57,
    end_column=40,
    message="log_softmax on bfloat16 logits",
    fix=Fix(
        description="cast the logits with .float()",
        applicability=Applicability.SAFE,
        edits=(Edit(line=57, column=21, end_line=57, end_column=27, replacement="logits.float()"),),
    ),
)
CONFIRMED = Finding(
    code="MP002",
    name="fp16-autocast-without-scaler",
    path="train_fp16.py",
    line=30,
    column=10,
    end_line=30,
    end_column=52,
    message="fp16 autocast reaches backward() without loss scaling",
    severity=Severity.WARNING,
    verdict="confirmed",
    evidence=("loss.backward() ran on a float16 graph", "3 of 4 gradients underflowed to 0"),
    device="emulated-cuda",
)


def test_text_is_one_editor_parsable_line_per_finding() -> None:
    assert text_report.render([UNCAST, FIXABLE]).splitlines() == [
        "rl/ppo.py:42:12: MP001 [uncast-log-softmax] log_softmax on bfloat16 logits "
        "(from `policy`, cast at rl/ppo.py:5); cast with .float() first",
        "rl/ppo.py:57:8: MP001 [uncast-log-softmax] log_softmax on bfloat16 logits [*]",
    ]


def test_text_shows_a_runtime_verdict_its_evidence_and_device() -> None:
    assert text_report.render([CONFIRMED]) == (
        "train_fp16.py:30:10: MP002 [fp16-autocast-without-scaler] fp16 autocast reaches "
        "backward() without loss scaling [confirmed: loss.backward() ran on a float16 graph; "
        "3 of 4 gradients underflowed to 0 (on emulated-cuda)]"
    )


def test_nothing_to_report_renders_as_nothing_or_an_empty_array() -> None:
    assert text_report.render([]) == ""
    assert json.loads(json_report.render([])) == []


def test_json_objects_carry_the_documented_keys_in_order() -> None:
    [plain, fixable, confirmed] = json.loads(json_report.render([UNCAST, FIXABLE, CONFIRMED]))

    base_keys = [
        "code", "name", "path", "line", "column", "end_line", "end_column", "message", "severity",
    ]  # fmt: skip
    assert list(plain) == base_keys
    assert plain == {
        "code": "MP001",
        "name": "uncast-log-softmax",
        "path": "rl/ppo.py",
        "line": 42,
        "column": 12,
        "end_line": 42,
        "end_column": 49,
        "message": UNCAST.message,
        "severity": "error",
    }
    assert list(fixable) == [*base_keys, "fix"]
    assert fixable["fix"] == {
        "description": "cast the logits with .float()",
        "applicability": "safe",
        "edits": [{"line": 57, "column": 21, "end_line": 57, "end_column": 27, "replacement": "logits.float()"}],
    }
    assert list(confirmed) == [*base_keys, "verdict", "evidence", "device"]
    assert (confirmed["severity"], confirmed["verdict"], confirmed["device"]) == (
        "warning",
        "confirmed",
        "emulated-cuda",
    )
    assert confirmed["evidence"] == list(CONFIRMED.evidence)


def test_json_is_indented_for_people_and_diffs() -> None:
    assert json_report.render([UNCAST]).startswith('[\n  {\n    "code": "MP001",\n')


@pytest.mark.parametrize("format_name", FORMATS)
def test_every_format_renders_each_finding(format_name: str) -> None:
    output = renderer(format_name)([UNCAST, CONFIRMED])

    assert "rl/ppo.py" in output
    assert "train_fp16.py" in output
