"""The server's memory stays flat however many edits come: what one run keeps (results, trees,
prefilter facts, content hashes) replaces what the run before kept."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.lsp_client import Client
from tests.server.test_server import MODELS, TRAIN

EDITS = 1000
WARM_UP = 200  # edits before the baseline: the allocator's pools and the caches settle
MAX_GROWTH_KB = 8 * 1024


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's RSS from /proc")
def test_memory_stays_flat_over_a_thousand_edits(tmp_path: Path, write_files: Callable) -> None:
    write_files(tmp_path, {"models.py": MODELS, "train.py": TRAIN})
    client = Client(tmp_path)
    try:
        client.initialize()
        uri = client.open("train.py")
        client.diagnostics(uri, version=1)
        started = time.monotonic()
        for edit in range(1, EDITS + 1):
            # Every text is new (new hashes, new trees for the edited statement); every other one fixes the bug.
            fixed = ".float()" if edit % 2 else ""
            text = TRAIN.replace("policy.parameters())", f"policy.parameters(), lr={edit}e-6)").replace(
                "policy = build_policy()", f"policy = build_policy(){fixed}"
            )
            client.change(uri, edit + 1, text)
            diagnostics = client.diagnostics(uri, version=edit + 1)
            assert len(diagnostics) == (0 if fixed else 2)
            if edit == WARM_UP:
                baseline = resident_kb(client.process.pid)
        grown = resident_kb(client.process.pid) - baseline
        print(f"{EDITS} edits in {time.monotonic() - started:.0f} s; RSS {baseline} kB -> +{grown} kB")
        assert grown <= MAX_GROWTH_KB
        assert client.shutdown() == 0
    finally:
        client.kill()
