"""What training frameworks do to precision: one module per framework, each a small table of its
entry points read from the framework's own source (version and file cited), applied by the
interpreter like torch's own API. mplint never imports a framework."""

from __future__ import annotations

import json
import os
from pathlib import Path

from mplint.repository import marked_root


def read_json_config(name: str, script: str) -> tuple[str, object] | None:
    """A config file (a DeepSpeed config, a training script's own) named relative to the script at
    `script`, to the working directory or to the script's repository root (where the framework
    resolves it when the script runs from the root, as launch commands run it): its path and its
    data, or None when there is no such readable file. JSON, or YAML read as
    `accelerate_launch.scalars` reads it (top-level keys and one level below, values as written)."""
    from mplint.analysis.frameworks.accelerate_launch import LARGEST_TEXT, read_text, scalars  # they import this

    root = marked_root(os.path.abspath(script))
    for base in (Path(script).parent, Path.cwd(), *([Path(root)] if root is not None else [])):
        candidate = base / name
        # A larger file is data (`json.load(open(os.path.join(here, "data", "train.json")))`), not read.
        text = read_text(str(candidate), LARGEST_TEXT)
        if text is None:
            continue
        try:
            data = scalars(text) if candidate.suffix in (".yaml", ".yml") else json.loads(text)
        except ValueError:
            continue
        return str(candidate), data
    return None
