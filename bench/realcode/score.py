"""Score mplint's MP001-MP003 findings against bugs labelled by hand in public training repositories.

    python -m mplint --no-cache --format json CHECKOUTS > findings.json   # run at CHECKOUTS' parent
    python bench/realcode/score.py findings.json bench/realcode/holdout1.json

Each labels file lists repositories (`checkout`: the directory name under CHECKOUTS, `commit`: the
commit labelled) with `bugs` (path, line, code, why; `trigger` for a bug only a non-default option
reaches, `intentional` for a deliberate design), `negatives` (code that looks like a bug and is not)
and `uncertain` places, which count neither way. Paths under a repository's `unlabelled_paths` were not
read by the labeller: findings there are listed, not scored. MP002 is reported at the autocast region
and labelled at the backward, which its message names.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CODES = ("MP001", "MP002", "MP003")
Place = tuple[str, int, str]


def reported_places(findings: list[dict]) -> set[Place]:
    """(path, line, code) of each MP001-MP003 finding; MP002 at the backward its message names."""
    places = set()
    for finding in findings:
        path, line = finding["path"], finding["line"]
        if finding["code"] == "MP002":  # the backward may be in another file than the region
            backward = re.search(r"at ([^ ]+):(\d+) with no loss scaling", finding["message"])
            path, line = (backward.group(1), int(backward.group(2))) if backward else (path, line)
        if finding["code"] in CODES:
            places.add((path, line, finding["code"]))
    return places


def main(findings_path: str, labels_path: str) -> None:
    labels = json.loads(Path(labels_path).read_text())
    found = json.loads(Path(findings_path).read_text())
    findings = found["findings"] if isinstance(found, dict) else found
    reported = reported_places(findings)
    bugs: dict[Place, dict] = {}
    uncertain: set[Place] = set()
    unlabelled: list[str] = []
    for repo in labels["repos"]:
        name = repo["checkout"]
        bugs.update({(f"{name}/{bug['path']}", bug["line"], bug["code"]): bug for bug in repo["bugs"]})
        uncertain |= {(f"{name}/{u['path']}", u.get("line"), u.get("code")) for u in repo.get("uncertain", [])}
        unlabelled += [f"{name}/{prefix}" for prefix in repo.get("unlabelled_paths", [])]
    scored = {place for place in reported if not place[0].startswith(tuple(unlabelled))}
    for code in (*CODES, "ALL"):
        wanted = {place for place in bugs if code in ("ALL", place[2])}
        default = {place for place in wanted if not bugs[place].get("trigger")}
        mine = {place for place in scored if code in ("ALL", place[2])}
        hits = wanted & mine
        false = mine - wanted - uncertain
        print(
            f"{code}: labelled {len(wanted)} (default configuration {len(default)}), reported {len(mine)}, "
            f"found {len(hits)}, recall {len(hits) / max(len(wanted), 1):.2f} "
            f"(default {len(default & mine) / max(len(default), 1):.2f}), false {len(false)}, "
            f"uncertain hit {len((mine - wanted) & uncertain)}, "
            f"precision {len(hits) / max(len(hits) + len(false), 1):.2f}"
        )
    print("missed:", *sorted(set(bugs) - reported), sep="\n  ")
    print("reported, not labelled:", *sorted(scored - set(bugs)), sep="\n  ")
    print("reported in unlabelled paths:", len(reported - scored))


if __name__ == "__main__":
    main(*sys.argv[1:3])
