"""Recreate the checkouts of a labelled set from fetched git mirrors, at the commits labelled.

    python bench/realcode/checkout.py bench/realcode/holdout11.json /work/realcode/holdout11

Each repository must have been fetched first (the search tool's `fetch github:OWNER/NAME` leaves a
bare git directory at MIRRORS/OWNER+NAME/repo). Repositories whose mirror or commit is missing are
listed with the fetch source to ask for, and the script exits 1; the others are extracted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MIRRORS = Path("/work/.mirror")


def extract(owner_repo: str, commit: str, into: Path) -> str | None:
    """Extract `owner_repo` at `commit` into `into`; return why not, or None.

    Blobs missing from the mirror (its largest files may be left out) are skipped.
    """
    git_dir = MIRRORS / owner_repo.replace("/", "+") / "repo"
    if not git_dir.is_dir():
        return f"not fetched: fetch github:{owner_repo}"
    git = ["git", "--git-dir", str(git_dir)]
    tree = subprocess.run([*git, "ls-tree", "-r", "-z", commit], capture_output=True)
    if tree.returncode != 0:
        return f"commit {commit[:12]} not in the mirror: fetch github:{owner_repo} again"
    blobs = []
    for entry in tree.stdout.decode().split("\0"):
        if entry:
            meta, path = entry.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind == "blob" and mode != "120000":
                blobs.append((sha, path))
    contents = subprocess.run(
        [*git, "cat-file", "--batch"],
        input="".join(f"{sha}\n" for sha, _ in blobs).encode(),
        capture_output=True,
    ).stdout
    at = 0
    for sha, path in blobs:
        header_end = contents.index(b"\n", at)
        header = contents[at:header_end].split()
        at = header_end + 1
        if header[-1] == b"missing":
            continue
        size = int(header[2])
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(contents[at : at + size])
        at += size + 1
    return None


def main(labels_path: str, checkouts: str) -> int:
    repos = json.loads(Path(labels_path).read_text())["repos"]
    missing = 0
    for repo in repos:
        into = Path(checkouts) / repo["checkout"]
        if into.is_dir():
            continue
        why = extract(repo["url_or_owner_repo"], repo["commit"], into)
        if why:
            missing += 1
            print(f"{repo['checkout']}: {why}", file=sys.stderr)
    print(f"{len(repos) - missing} of {len(repos)} checkouts in {checkouts}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
