"""`--format sarif`: a SARIF 2.1.0 log that validates against the official schema, with every
rule described, and results GitHub code scanning can place and fix."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mplint.findings import Finding
from mplint.registry import all_rules
from mplint.report import sarif
from tests.test_cli import mplint
from tests.test_report import CONFIRMED, FIXABLE, UNCAST

SCHEMA_PATH = Path(__file__).resolve().parents[1].parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    if not SCHEMA_PATH.exists():
        pytest.skip(f"the SARIF schema is not at {SCHEMA_PATH}")
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def sarif_log(*findings: Finding) -> dict[str, Any]:
    return json.loads(sarif.render(findings))


def test_the_log_validates_against_the_sarif_schema(validator: jsonschema.protocols.Validator) -> None:
    log = sarif_log(UNCAST, FIXABLE, CONFIRMED)
    validator.validate(log)
    assert log["version"] == "2.1.0"


def test_an_empty_log_still_validates_and_describes_the_rules(validator: jsonschema.protocols.Validator) -> None:
    log = sarif_log()
    validator.validate(log)
    assert log["runs"][0]["results"] == []
    assert log["runs"][0]["tool"]["driver"]["rules"]


def test_the_driver_describes_every_rule_and_the_runtime_only_codes() -> None:
    described = sarif_log()["runs"][0]["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in described] == [rule.CODE for rule in all_rules()] + ["MP901", "MP902", "MP903"]
    mp902 = described[-2]
    assert (mp902["name"], mp902["defaultConfiguration"]["level"]) == ("unscaled-fp16-backward", "error")
    assert mp902["shortDescription"]["text"].startswith("A backward pass ran through float16 ops")
    mp001 = next(rule for rule in described if rule["id"] == "MP001")
    assert mp001["name"] == "uncast-log-softmax"
    assert mp001["shortDescription"]["text"].startswith("A log-probability is computed")
    assert "## Why is this bad" in mp001["fullDescription"]["text"]


def test_a_result_names_its_rule_level_message_and_region() -> None:
    run = sarif_log(UNCAST, CONFIRMED)["runs"][0]
    uncast, confirmed = run["results"]
    assert run["tool"]["driver"]["rules"][uncast["ruleIndex"]]["id"] == "MP001"
    assert (uncast["ruleId"], uncast["level"], confirmed["level"]) == ("MP001", "error", "warning")
    assert uncast["message"]["text"] == UNCAST.message
    location = uncast["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "rl/ppo.py", "uriBaseId": "%SRCROOT%"}
    # 1-based columns, the end one past the last character: a Finding's own convention.
    assert location["region"] == {"startLine": 42, "startColumn": 12, "endLine": 42, "endColumn": 49}
    assert run["columnKind"] == "unicodeCodePoints"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"].endswith("/")


def test_a_fix_becomes_replacements_of_its_file() -> None:
    result = sarif_log(FIXABLE)["runs"][0]["results"][0]
    (change,) = result["fixes"][0]["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "rl/ppo.py"
    assert change["replacements"] == [
        {
            "deletedRegion": {"startLine": 57, "startColumn": 21, "endLine": 57, "endColumn": 27},
            "insertedContent": {"text": "logits.float()"},
        }
    ]
    assert "fixes" not in sarif_log(UNCAST)["runs"][0]["results"][0]


def test_a_runtime_verdict_travels_in_the_result_properties_and_its_message() -> None:
    result = sarif_log(CONFIRMED)["runs"][0]["results"][0]
    assert result["properties"] == {
        "verdict": "confirmed",
        "evidence": list(CONFIRMED.evidence),
        "device": "emulated-cuda",
    }
    assert result["message"]["text"] == (
        "fp16 autocast reaches backward() without loss scaling [confirmed: loss.backward() ran on a float16 graph; "
        "3 of 4 gradients underflowed to 0 (on emulated-cuda)]"
    )


def test_a_refuted_finding_stays_in_the_log_as_a_note() -> None:
    refuted = dataclasses.replace(CONFIRMED, verdict="refuted", evidence=("the region ran as bfloat16",))
    confirmed, note = sarif_log(CONFIRMED, refuted)["runs"][0]["results"]
    assert (confirmed["level"], note["level"]) == ("warning", "note")
    assert note["properties"]["verdict"] == "refuted"


def test_a_runtime_only_finding_is_a_result_of_its_described_code(validator: jsonschema.protocols.Validator) -> None:
    runtime_only = dataclasses.replace(CONFIRMED, code="MP902", name="unscaled-fp16-backward", verdict="runtime-only")
    log = sarif_log(runtime_only)
    validator.validate(log)
    [result] = log["runs"][0]["results"]
    assert log["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "MP902"


def test_paths_outside_the_working_directory_are_absolute_uris() -> None:
    outside = Finding("MP001", "uncast-log-softmax", "/srv/rl/my ppo.py", 1, 1, 1, 2, "m")
    location = sarif_log(outside)["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "file:///srv/rl/my%20ppo.py"}


def test_the_cli_writes_a_valid_log_to_the_output_file(
    tmp_path: Path, uncast_log_softmax: str, validator: jsonschema.protocols.Validator
) -> None:
    (tmp_path / "train.py").write_text(uncast_log_softmax)
    completed = mplint("--format", "sarif", "--output-file", "mplint.sarif", "train.py", cwd=tmp_path)
    assert completed.returncode == 1
    assert completed.stdout == ""
    log = json.loads((tmp_path / "mplint.sarif").read_text())
    validator.validate(log)
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "MP001"
    assert result["locations"][0]["physicalLocation"]["region"]["startLine"] == 4
