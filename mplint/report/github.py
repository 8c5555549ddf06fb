"""GitHub Actions workflow commands: each finding becomes an annotation on the pull request.

`::error file=train.py,line=4,col=8,endLine=4,endColumn=20,title=MP001 [name]::message`, with
the runner's escaping: `%`, CR and LF in the message, and also `:` and `,` in the properties.
"""

from __future__ import annotations

from collections.abc import Sequence

from mplint.findings import Finding


def render(findings: Sequence[Finding]) -> str:
    return "\n".join(_command(finding) for finding in findings)


def _command(finding: Finding) -> str:
    properties = {
        "file": finding.path,
        "line": finding.line,
        "col": finding.column,
        "endLine": finding.end_line,
        "endColumn": finding.end_column,
        "title": f"{finding.code} [{finding.name}]",
    }
    listed = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    message = finding.message + (f" [{finding.verdict_note()}]" if finding.verdict is not None else "")
    return f"::{_level(finding)} {listed}::{escape_data(message)}"


def _level(finding: Finding) -> str:
    """A finding the run refuted is a notice: it stays visible without failing anyone's review."""
    return "notice" if finding.verdict == "refuted" else finding.severity.value


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")
