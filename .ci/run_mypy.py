"""mypy over mplint/ and rules/, with rules/ checked under the name it is installed as: `mplint.rules`.

`python .ci/run_mypy.py [mypy options]`, from anywhere (it runs in the repository root); the settings
are pyproject.toml's [tool.mypy]. Plain `mypy` cannot check this layout: setuptools installs rules/
as `mplint.rules` (`package-dir`), mypy has no such mapping and names the files `rules.*`, and it
cannot see the editable install's import hook, so mplint's `from mplint.rules... import` does not
resolve. This is mypy's own command line plus that one renaming of the sources. `mypy.api` takes
only a command line, so this calls the functions `mypy.main.main` is made of; they are not a
stable API, which is one more reason mypy is pinned exactly in the `test` extra.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mypy import util
from mypy.fscache import FileSystemCache
from mypy.main import process_options, run_build
from mypy.modulefinder import BuildSource

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"rules": "mplint.rules"}  # pyproject's [tool.setuptools] package-dir, where it renames


def _installed_name(source: BuildSource) -> BuildSource:
    for directory, package in PACKAGE_DIRS.items():
        top, _, rest = source.module.partition(".")
        if top == directory and source.path and Path(source.path).resolve().is_relative_to(ROOT / directory):
            module = f"{package}.{rest}" if rest else package
            return BuildSource(source.path, module, source.text, source.base_dir, source.followed)
    return source


def main(args: list[str]) -> int:
    os.chdir(ROOT)  # where pyproject.toml, and the relative `files` it names, are
    started = time.time()
    fscache = FileSystemCache()
    sources, options = process_options(args, stdout=sys.stdout, stderr=sys.stderr, fscache=fscache)
    sources = [_installed_name(source) for source in sources]
    # What mypy.main.main does after process_options, less the options this project does not use.
    _, messages, blockers = run_build(sources, options, fscache, started, sys.stdout, sys.stderr)
    n_errors, n_notes, n_files = util.count_stats(messages)
    formatter = util.FancyFormatter(sys.stdout, sys.stderr, options.hide_error_codes)
    if options.error_summary:
        if n_errors:
            print(
                formatter.format_error(
                    n_errors, n_files, len(sources), blockers=blockers, use_color=options.color_output
                )
            )
        elif n_notes == len(messages):
            print(formatter.format_success(len(sources), options.color_output))
        sys.stdout.flush()
    if messages and n_notes < len(messages):
        return 2 if blockers else 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
