"""What training frameworks do to precision: one module per framework, each a small table of its
entry points read from the framework's own source (version and file cited), applied by the
interpreter like torch's own API. mplint never imports a framework."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_config(name: str, script: str) -> tuple[str, object] | None:
    """A JSON config file (a DeepSpeed config) named relative to the script at `script` or to the
    working directory (where the framework resolves it when the script runs from the root): its
    path and its data, or None when there is no such readable file."""
    for base in (Path(script).parent, Path.cwd()):
        candidate = base / name
        try:
            return str(candidate), json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return None
