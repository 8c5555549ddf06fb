"""A GitHub Actions step summary: one Markdown table of the findings with their verdicts and evidence.

`mplint verify` appends it to `$GITHUB_STEP_SUMMARY`, which the run's page shows. Each finding links
to its line in the repository at the commit checked (`blob_url`) when the workflow's environment names
them; otherwise the location is shown as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote

from mplint.findings import Finding


def step_summary(script: str, status: str, findings: Sequence[Finding], blob_url: str | None) -> str:
    lines = [f"### mplint verify `{_cell(script)}`", "", status, ""]
    if findings:
        lines += ["| Finding | Verdict | Evidence | Where |", "|---|---|---|---|"]
        lines += [_row(finding, blob_url) for finding in findings]
    return "\n".join(lines) + "\n\n"


def _row(finding: Finding, blob_url: str | None) -> str:
    where = f"{finding.path}:{finding.line}"
    if blob_url is not None and not finding.path.startswith("/"):
        where = f"[{_cell(where)}]({blob_url}/{quote(finding.path)}#L{finding.line})"
    else:
        where = f"`{_cell(where)}`"
    evidence = "<br>".join(_cell(line) for line in finding.evidence) or "—"
    finding_cell = f"**{finding.code}** `{finding.name}`: {_cell(finding.message)}"
    return f"| {finding_cell} | {finding.verdict or 'static only'} | {evidence} | {where} |"


def _cell(text: str) -> str:
    """Text that stays inside one table cell: pipes escaped, line breaks as <br>, no raw HTML."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("|", "\\|").replace("\n", "<br>")
