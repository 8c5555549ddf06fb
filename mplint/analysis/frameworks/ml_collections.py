"""ml_collections config files in the precision model: `config_flags.DEFINE_config_file("config",
"config/base.py")` makes `absl.flags.FLAGS.config` the `ConfigDict` that file's `get_config()`
returns (ml_collections 0.1.1, `config_flags/config_flags.py`: the default path is loaded as a Python
module and its `get_config()` called, relative to the working directory the script is started from).
The ddpo family (kvablack/ddpo-pytorch, d3po) configures training this way: `config.use_lora = True`,
`config.mixed_precision = "fp16"` in `config/base.py`.

The file is read as the repository starts the script (from its root, beside the script, or from
where mplint runs); a
`--config other.py:name` given on a command line is not followed, and the default file stands.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mplint.analysis.summaries import Definition
from mplint.analysis.values import UNKNOWN, Value
from mplint.repository import repository_of

if TYPE_CHECKING:
    from mplint.analysis.interpreter import Interpreter

DEFINE_CONFIG_FILE = frozenset(
    {"ml_collections.config_flags.DEFINE_config_file", "ml_collections.config_flags.config_flags.DEFINE_config_file"}
)
FLAGS = "absl.flags.FLAGS"


def define_config_file(self: Interpreter, script: str, args: list[Value], kwargs: dict[str, Value]) -> None:
    """Note the flag `DEFINE_config_file(name, default)` defines, with the config file it defaults to."""
    name = args[0].const if args else kwargs.get("name", UNKNOWN).const
    default = args[1].const if len(args) > 1 else kwargs.get("default", UNKNOWN).const
    if isinstance(name, str) and isinstance(default, str) and default.endswith(".py"):
        self.config_files[name] = (default, script)


def flag_value(self: Interpreter, flag: str) -> Value | None:
    """`FLAGS.<flag>` for a config file flag: what its file's `get_config()` returns; None for any
    other flag."""
    defined = self.config_files.get(flag)
    if defined is None:
        return None
    default, script = defined
    run_root = os.path.abspath(self.index.root or ".")
    for base in (repository_of(os.path.abspath(script), run_root), os.path.dirname(os.path.abspath(script)), run_root):
        path = os.path.join(base, default)
        if not os.path.isfile(path):
            continue
        # The file as the run names it (relative where the script's path is).
        found = self.exported(path if os.path.isabs(script) else os.path.relpath(path), "get_config")
        if found is not None and isinstance(found.payload, Definition):
            return self.call_definition(found.payload, [], {}, None)[0]
    return UNKNOWN
