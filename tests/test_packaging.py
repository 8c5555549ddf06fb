"""The package installs the way users get it: a wheel, an editable checkout, and no torch.

`rules/` lives at the top of the repository but installs as `mplint.rules`; these tests build
the real artefacts to make sure that mapping, and the hand-written package list in
pyproject.toml, hold for wheels and for editable installs alike.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PROJECT["project"]["version"]
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "mplint", "rules")


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def installed(name: str) -> Version | None:
    try:
        return Version(version(name))
    except PackageNotFoundError:
        return None


def build_isolation() -> list[str]:
    """pip's build-isolation flags for building mplint from this interpreter.

    The installed setuptools builds fast and offline, so use it when it meets [build-system];
    a fresh venv's may not (Python 3.11's venvs ship 65.5, and setuptools before 70.1 builds no
    wheel without the `wheel` package): then pip builds in isolation, fetching what it asks.
    """
    for requirement in map(Requirement, PROJECT["build-system"]["requires"]):
        have = installed(requirement.name)
        if have is None or not requirement.specifier.contains(have, prereleases=True):
            return []
    setuptools = installed("setuptools")
    if setuptools is None or (setuptools < Version("70.1") and installed("wheel") is None):
        return []
    return ["--no-build-isolation"]


def repo_sources(directory: str) -> list[str]:
    """Python files under `directory` of the checkout, relative to it."""
    root = REPO / directory
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    # Build from a copy: an in-tree build leaves build/ behind, and stale files there would
    # end up in the next wheel and hide a module missing from the package list.
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        elif (REPO / name).exists():
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", *build_isolation()]
    run([*pip_wheel, "-w", str(out), "."], cwd=source)
    (path,) = out.glob(f"mplint-{VERSION}-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


@pytest.fixture(scope="module")
def editable_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees the running tests' click, pip and setuptools, with mplint editable."""
    venv = tmp_path_factory.mktemp("venv")
    # Not --system-site-packages: from inside a venv that means the base installation's
    # packages, not the ones README's command installed here. A .pth file puts this
    # interpreter's site-packages on the nested venv's path instead (plain entries: their own
    # .pth files, the checkout's editable mplint among them, stay unprocessed); --without-pip
    # then leaves the pip and setuptools from there to run the install.
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], REPO)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    nested_site = Path(run([str(python), "-c", purelib], REPO).stdout.strip())
    outer_sites = site.getsitepackages()
    if site.ENABLE_USER_SITE:
        outer_sites.append(site.getusersitepackages())
    (nested_site / "_running_tests_site.pth").write_text(
        "".join(f"{path}\n" for path in outer_sites if Path(path).is_dir())
    )
    run([str(python), "-m", "pip", "install", "--no-deps", *build_isolation(), "-e", "."], REPO)
    assert list(nested_site.glob("mplint-*.dist-info")), "mplint did not install into the venv"
    return python


@pytest.mark.slow
def test_wheel_ships_every_rule_module_under_mplint_rules(wheel: zipfile.ZipFile) -> None:
    rule_modules = repo_sources("rules")
    assert "__init__.py" in rule_modules
    shipped = set(wheel.namelist())
    assert {f"mplint/rules/{name}" for name in rule_modules} <= shipped
    assert not any(name.startswith("rules/") for name in shipped)


@pytest.mark.slow
def test_wheel_ships_every_module_of_the_package(wheel: zipfile.ZipFile) -> None:
    missing = {f"mplint/{name}" for name in repo_sources("mplint")} - set(wheel.namelist())
    assert not missing, "add their packages to [tool.setuptools] packages"


@pytest.mark.slow
def test_wheel_declares_the_mplint_console_script(wheel: zipfile.ZipFile) -> None:
    entry_points = wheel.read(f"mplint-{VERSION}.dist-info/entry_points.txt").decode()
    assert "[console_scripts]\nmplint = mplint.cli:main" in entry_points


@pytest.mark.slow
def test_editable_install_maps_mplint_rules_to_the_checkout(
    editable_venv: Path, tmp_path: Path
) -> None:
    # Run outside the checkout so the current directory cannot be what makes `mplint` importable.
    probe = (
        "import mplint, mplint.rules; print(mplint.__path__[0]); print(mplint.rules.__path__[0])"
    )
    package, rules = run([str(editable_venv), "-c", probe], cwd=tmp_path).stdout.splitlines()
    assert Path(package).resolve() == REPO / "mplint"
    assert Path(rules).resolve() == REPO / "rules"


@pytest.mark.slow
def test_editable_install_runs_python_dash_m_mplint(editable_venv: Path, tmp_path: Path) -> None:
    result = run([str(editable_venv), "-m", "mplint", "--version"], cwd=tmp_path)
    assert VERSION in result.stdout


# Runs `python -m mplint ARGS` in-process, then reports on stderr's last line whether any
# torch module got imported along the way (the static path must stay light and torch-free).
TORCH_PROBE = """
import runpy, sys
sys.argv = ["mplint", *sys.argv[1:]]
try:
    runpy.run_module("mplint", run_name="__main__", alter_sys=True)
except SystemExit as done:
    status = done.code or 0
else:
    status = 0
torch_modules = sorted(name for name in sys.modules if name.split(".")[0] == "torch")
print(f"probe status={status} torch={torch_modules}", file=sys.stderr)
"""


@pytest.mark.parametrize("args", [["--version"], ["examples/"]], ids=["version", "lint-examples"])
def test_static_path_never_imports_torch(args: list[str]) -> None:
    # examples/ is real training code that imports torch itself: linting must only read it.
    result = subprocess.run(
        [sys.executable, "-c", TORCH_PROBE, *args], cwd=REPO, capture_output=True, text=True
    )
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line in ("probe status=0 torch=[]", "probe status=1 torch=[]"), result.stderr


def test_the_rules_do_not_import_libcst_matchers() -> None:
    """`libcst.matchers` (a generated module of ~400 dataclasses) costs ~0.3 s to import, paid by every
    run, a warm one included: rules test node types directly."""
    probe = "import sys; from mplint.registry import all_rules; all_rules(); print('libcst.matchers' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"
