"""The import graph: which names the files of a run import from each other, read off their text."""

from __future__ import annotations

from pathlib import Path

import pytest

from mplint.analysis.project import ImportGraph, ModuleIndex

UTILS = "pkg/utils.py"


def graph(importer: str) -> ImportGraph:
    texts = {UTILS: "def autocast(): ...\ndef forward(): ...\n", "pkg/__init__.py": "", "pkg/train.py": importer}
    return ImportGraph(ModuleIndex(list(texts)), texts)


@pytest.mark.parametrize(
    ("importer", "used"),
    [
        pytest.param("from pkg.utils import autocast\n", {"autocast"}, id="by-name"),
        pytest.param("from .utils import forward as run\n", {"forward"}, id="relative-with-alias"),
        pytest.param(
            "from pkg.utils import (\n    forward,  # the step\n    autocast,\n)\n",
            {"forward", "autocast"},
            id="parenthesized",
        ),
        pytest.param("from pkg.utils import forward, \\\n    autocast\n", {"forward", "autocast"}, id="continued-line"),
        pytest.param("from pkg.utils import *\n", {"forward", "autocast"}, id="star"),
        pytest.param("import pkg.utils\npkg.utils.autocast()\n", {"autocast"}, id="module-attribute"),
        pytest.param("from pkg import utils\nutils.forward()\n", {"forward"}, id="module-from-package"),
        pytest.param("import pkg.utils as u\n", set(), id="module-no-attribute-use"),
        pytest.param("from torch.cuda.amp import autocast\n", set(), id="another-module"),
    ],
)
def test_names_used_from_another_file(importer: str, used: set[str]) -> None:
    found = {name for name in ("autocast", "forward") if graph(importer).used_elsewhere(UTILS, name)}

    assert found == used


def test_a_file_importing_from_itself_does_not_count() -> None:
    texts = {UTILS: "from pkg.utils import autocast\n"}

    assert not ImportGraph(ModuleIndex(list(texts)), texts).used_elsewhere(UTILS, "autocast")


@pytest.mark.parametrize(
    ("importer", "module", "found"),
    [
        # OpenAI CLIP's layout: `import clip` beside `clip/__init__.py` and `clip/clip.py` is the package.
        pytest.param("train.py", "clip", "clip/__init__.py", id="the-package-not-its-namesake-module"),
        pytest.param("repo/train.py", "clip", "repo/clip/__init__.py", id="in-a-folder-of-checkouts"),
        pytest.param("clip/model.py", "clip", "clip/clip.py", id="the-sibling-module-from-inside"),
    ],
)
def test_a_package_holding_a_module_of_its_name(importer: str, module: str, found: str) -> None:
    folder = importer.rpartition("/")[0]
    prefix = f"{folder}/" if folder and folder != "clip" else ""
    paths = [importer, f"{prefix}clip/__init__.py", f"{prefix}clip/clip.py", f"{prefix}clip/model.py"]
    assert ModuleIndex(sorted(set(paths))).resolve(module, importer) == found


@pytest.mark.parametrize(
    ("layout", "found"),
    [
        # hold-out 26: transformers_tasks vendors peft (`LLM/peft-chatglm/src/peft`); LLM-Tuning's
        # `import peft` beside it in the same folder of checkouts loads the installed peft.
        pytest.param(
            {"LLM-Tuning/README.md": "", "transformers_tasks/README.md": ""},
            None,
            id="another-checkouts-vendored-package",
        ),
        # One repository, `pip install -e .` over a src layout: its scripts import the package.
        pytest.param(
            {"README.md": "", "setup.py": ""},
            "transformers_tasks/LLM/peft-chatglm/src/peft/__init__.py",
            id="a-src-layout-of-the-same-repository",
        ),
    ],
)
def test_a_module_of_another_repository_is_not_what_an_import_loads(
    layout: dict[str, str], found: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = ["LLM-Tuning/RLHF/reward_modeling.py", "transformers_tasks/LLM/peft-chatglm/src/peft/__init__.py"]
    for name in [*paths, *layout]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    monkeypatch.chdir(tmp_path)
    assert ModuleIndex(paths).resolve("peft", paths[0]) == found


@pytest.mark.parametrize("run_root", ["", "PromptKD/"], ids=["above-the-repository", "at-its-root"])
def test_a_project_the_repository_ships_is_importable_wherever_the_run_starts(
    run_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PromptKD ships Dassl (`Dassl.pytorch/setup.py`, installed by its README) and its trainers import
    `dassl.optim`: what the import loads does not depend on the folder the run starts in."""
    layout = ["PromptKD/README.md", "PromptKD/Dassl.pytorch/setup.py"]
    paths = ["PromptKD/trainers/coop.py", "PromptKD/Dassl.pytorch/dassl/optim/__init__.py"]
    for name in [*layout, *paths]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    monkeypatch.chdir(tmp_path / run_root)
    relative = [path.removeprefix(run_root) for path in paths]
    assert ModuleIndex(relative).resolve("dassl.optim", relative[0]) == relative[1]
