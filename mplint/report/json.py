"""A JSON array of findings, one object each, keys in a stable order; or of counts per rule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mplint.findings import Finding, Fix, counts_by_rule


def render(findings: Sequence[Finding]) -> str:
    return json.dumps([finding_object(finding) for finding in findings], indent=2)


def statistics(findings: Sequence[Finding]) -> str:
    """`--statistics --format json`: `{"code", "name", "count", "fixable"}` per rule, most frequent first."""
    return json.dumps(
        [
            {"code": row.code, "name": row.name, "count": row.count, "fixable": row.fixable}
            for row in counts_by_rule(findings)
        ],
        indent=2,
    )


def finding_object(finding: Finding) -> dict[str, Any]:
    """One finding as the JSON formats (this one, `verify --format json`, the HTML report's data) write it."""
    data: dict[str, Any] = {
        "code": finding.code,
        "name": finding.name,
        "path": finding.path,
        "line": finding.line,
        "column": finding.column,
        "end_line": finding.end_line,
        "end_column": finding.end_column,
        "message": finding.message,
        "severity": finding.severity.value,
    }
    if finding.fix is not None:
        data["fix"] = _fix(finding.fix)
    if finding.related:
        data["related"] = [{"message": message} for message in finding.related]
    if finding.verdict is not None:
        data["verdict"] = finding.verdict
        data["evidence"] = list(finding.evidence)
        data["device"] = finding.device
    return data


def _fix(fix: Fix) -> dict[str, Any]:
    return {
        "description": fix.description,
        "applicability": fix.applicability.value,
        "edits": [
            {
                "line": edit.line,
                "column": edit.column,
                "end_line": edit.end_line,
                "end_column": edit.end_column,
                "replacement": edit.replacement,
            }
            for edit in fix.edits
        ],
    }
