"""One line per finding, `path:line:column: CODE [name] message`, the format editors parse."""

from __future__ import annotations

from collections.abc import Sequence

from mplint.findings import Finding


def render(findings: Sequence[Finding]) -> str:
    return "\n".join(_line(finding) for finding in findings)


def _line(finding: Finding) -> str:
    location = f"{finding.path}:{finding.line}:{finding.column}"
    line = f"{location}: {finding.code} [{finding.name}] {finding.message}"
    if finding.fix is not None:
        line += " [*]"
    if finding.verdict is not None:
        verdict = finding.verdict
        if finding.evidence:
            verdict += ": " + "; ".join(finding.evidence)
        if finding.device is not None:
            verdict += f" (on {finding.device})"
        line += f" [{verdict}]"
    return line
