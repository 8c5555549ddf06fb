"""`mplint verify --report`: one self-contained HTML page, readable offline (a CI artifact).

The page (`html_report.html`) embeds the run's report data (`mplint.runtime.report_data`) as
JSON; a small inline script (`html_report.js`) draws it as tables and SVG plots, styled by
`html_report.css`. Nothing is fetched: no network, no external scripts or fonts.
"""

from __future__ import annotations

import html
import json
import string
from collections.abc import Mapping
from importlib import resources
from typing import Any


def render(report: Mapping[str, Any]) -> str:
    """The page for `report` (as `mplint.runtime.report_data.build` returns it)."""
    # `</script>` or `<!--` inside a string would end or confuse the data block: escape `<` in JSON.
    payload = json.dumps(report, separators=(",", ":"), ensure_ascii=False).replace("<", "\\u003c")
    return string.Template(_asset("html_report.html")).substitute(
        title=html.escape(str(report["run"]["script"])),
        style=_asset("html_report.css"),
        data=payload,
        script=_asset("html_report.js"),
    )


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")
