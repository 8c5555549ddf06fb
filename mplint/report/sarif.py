"""SARIF 2.1.0, the format GitHub code scanning and most static-analysis viewers read.

One run; its tool driver lists every rule (id, name, short and full description), its results
point at files relative to `%SRCROOT%` (the directory mplint ran in) and carry the fix where a
rule offers one. Columns count code points and the region's end is exclusive, as in a Finding.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

import mplint
from mplint.findings import Finding, Fix
from mplint.registry import all_rules
from mplint.runtime.codes import RUNTIME_CODES

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SOURCE_ROOT = "%SRCROOT%"
INFORMATION_URI = "https://github.com/mplint/mplint"


def render(findings: Sequence[Finding]) -> str:
    """The log of `mplint --format sarif` and of `mplint verify --format sarif` (verdicts in `properties`)."""
    rules = [
        *(_rule(rule.CODE, rule.NAME, rule.summary(), rule.docs(), rule.SEVERITY.value) for rule in all_rules()),
        *(_rule(code.code, code.name, code.summary(), code.docs, "error") for code in RUNTIME_CODES.values()),
    ]
    index = {rule["id"]: position for position, rule in enumerate(rules)}
    run = {
        "tool": {
            "driver": {
                "name": "mplint",
                "version": mplint.__version__,
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }
        },
        "columnKind": "unicodeCodePoints",
        "originalUriBaseIds": {SOURCE_ROOT: {"uri": PurePath(os.getcwd()).as_uri() + "/"}},
        "results": [_result(finding, index.get(finding.code)) for finding in findings],
    }
    return json.dumps({"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2)


def _rule(code: str, name: str, summary: str, docs: str, level: str) -> dict[str, Any]:
    return {
        "id": code,
        "name": name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": docs, "markdown": docs},
        "defaultConfiguration": {"level": level},
    }


def _result(finding: Finding, rule_index: int | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.code,
        # A finding the run refuted stays in the log, as a note.
        "level": "note" if finding.verdict == "refuted" else finding.severity.value,
        "message": {"text": finding.message + (f" [{finding.verdict_note()}]" if finding.verdict is not None else "")},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": _artifact(finding.path),
                    "region": _region(finding.line, finding.column, finding.end_line, finding.end_column),
                }
            }
        ],
    }
    if rule_index is not None:
        result["ruleIndex"] = rule_index
    if finding.fix is not None:
        result["fixes"] = [_fix(finding.path, finding.fix)]
    if finding.related:
        result["relatedLocations"] = [
            {"id": number, "message": {"text": message}} for number, message in enumerate(finding.related, 1)
        ]
    if finding.verdict is not None:
        result["properties"] = {
            "verdict": finding.verdict,
            "evidence": list(finding.evidence),
            "device": finding.device,
        }
    return result


def _artifact(path: str) -> dict[str, str]:
    """A path relative to where mplint ran is a URI relative to `%SRCROOT%`; others are absolute."""
    pure = PurePath(path)
    if pure.is_absolute():
        return {"uri": pure.as_uri()}
    return {"uri": quote(pure.as_posix()), "uriBaseId": SOURCE_ROOT}


def _region(line: int, column: int, end_line: int, end_column: int) -> dict[str, int]:
    return {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}


def _fix(path: str, fix: Fix) -> dict[str, Any]:
    return {
        "description": {"text": f"{fix.description} ({fix.applicability.value} fix)"},
        "artifactChanges": [
            {
                "artifactLocation": _artifact(path),
                "replacements": [
                    {
                        "deletedRegion": _region(edit.line, edit.column, edit.end_line, edit.end_column),
                        "insertedContent": {"text": edit.replacement},
                    }
                    for edit in fix.edits
                ],
            }
        ],
    }
