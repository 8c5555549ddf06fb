"""Discovery finds the Python files a project means, in a stable order, and decodes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mplint.config import Settings
from mplint.errors import MissingPathError
from mplint.run.discovery import decode_source, discover, read_source


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def discovered(paths: list[str], settings: Settings | None = None) -> list[str]:
    settings = settings or Settings(root=Path.cwd())
    return [source.path for source in discover(paths, settings)]


def test_directories_are_walked_for_python_files_in_sorted_order(project, write_files) -> None:
    write_files(
        project,
        {
            "train.py": "",
            "src/trainer/models/policy.py": "",
            "src/trainer/__init__.py": "",
            "src/trainer/README.md": "",
            "src/trainer/stubs.pyi": "",
            "scripts/launch.sh": "",
            "scripts/eval.py": "",
        },
    )

    assert discovered(["."]) == [
        "scripts/eval.py",
        "src/trainer/__init__.py",
        "src/trainer/models/policy.py",
        "train.py",
    ]


def test_tool_and_build_directories_are_skipped(project, write_files) -> None:
    write_files(
        project,
        {
            "train.py": "",
            ".git/hooks/pre-commit.py": "",
            ".venv/lib/site.py": "",
            "venv/lib/site.py": "",
            ".tox/py311/lib/site.py": "",
            "build/lib/trainer/train.py": "",
            "dist/trainer/train.py": "",
            "src/__pycache__/train.py": "",
            "src/trainer.egg-info/setup.py": "",
            "web/node_modules/gyp/gyp.py": "",
            ".mplint_cache/v1.py": "",
            # A virtualenv under any name is recognised by its pyvenv.cfg.
            "envs/torch-nightly/pyvenv.cfg": "home = /usr/bin\n",
            "envs/torch-nightly/lib/site.py": "",
            "envs/notes.py": "",
        },
    )

    assert discovered(["."]) == ["envs/notes.py", "train.py"]


def test_configured_excludes_are_anchored_at_the_config_root(project, write_files) -> None:
    write_files(
        project,
        {
            "third_party/apex/amp.py": "",
            "src/third_party/keep.py": "",
            "src/generated/ops_pb2.py": "",
            "src/train.py": "",
        },
    )
    settings = Settings(root=project, extend_exclude=("/third_party", "*_pb2.py"))

    assert discovered(["."], settings) == ["src/third_party/keep.py", "src/train.py"]


def test_named_paths_are_checked_even_when_excluded(project, write_files) -> None:
    write_files(project, {"build/patch_amp.py": "", "build/other.py": ""})

    # As in ruff: excludes prune walks, but a file asked for by name is checked.
    assert discovered(["build/patch_amp.py"]) == ["build/patch_amp.py"]


def test_each_file_is_listed_once(project, write_files) -> None:
    write_files(project, {"src/train.py": "", "src/eval.py": ""})

    assert discovered(["src", "src/train.py", "./src/eval.py", "."]) == [
        "src/eval.py",
        "src/train.py",
    ]


def test_symlinked_directories_are_not_followed(project, write_files) -> None:
    write_files(project, {"pkg/train.py": ""})
    (project / "pkg/loop").symlink_to(project / "pkg", target_is_directory=True)
    (project / "pkg/also_train.py").symlink_to(project / "pkg/train.py")

    assert discovered(["."]) == ["pkg/train.py"]


def test_paths_outside_the_working_directory_are_absolute(tmp_path, write_files, monkeypatch):
    write_files(tmp_path, {"elsewhere/train.py": "", "cwd/.keep": ""})
    monkeypatch.chdir(tmp_path / "cwd")

    assert discovered(["../elsewhere"]) == [(tmp_path / "elsewhere/train.py").as_posix()]


def test_a_missing_path_is_an_error(project) -> None:
    with pytest.raises(MissingPathError, match=r"^trian\.py: no such file or directory$"):
        discover(["trian.py"], Settings(root=project))


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"x = 1\n", "x = 1\n"),
        (b"\xef\xbb\xbfx = 1\n", "x = 1\n"),
        (
            "# -*- coding: latin-1 -*-\nname = 'Schr\xf6dinger'\n".encode("latin-1"),
            "# -*- coding: latin-1 -*-\nname = 'Schr\xf6dinger'\n",
        ),
        ("label = '\u00fcber'\n".encode(), "label = '\u00fcber'\n"),
    ],
)
def test_sources_are_decoded_like_python_decodes_them(data: bytes, text: str) -> None:
    assert decode_source(data, "train.py").text == text


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"x = 1\nname = 'caf\xe9'\n", "not valid UTF-8 (byte 0xe9 at offset 17)"),
        (b"x = 1\ny = 2\nname = 'caf\xe9'\n", "not valid UTF-8 (byte 0xe9 at offset 23)"),
        (b"\x7fELF\x02\x01\x00\x00", "binary file (contains NUL bytes)"),
        (b"# coding: klingon\nx = 1\n", "bad encoding declaration: unknown encoding: klingon"),
    ],
)
def test_undecodable_sources_say_why(data: bytes, error: str) -> None:
    source = decode_source(data, "train.py")

    assert (source.path, source.text, source.error) == ("train.py", None, error)


def test_an_unreadable_file_says_why(project, write_files, monkeypatch) -> None:
    write_files(project, {"train.py": "x = 1\n"})

    def denied(self: Path) -> bytes:
        raise PermissionError(13, os.strerror(13), str(self))

    # Tests may run as root, for whom file modes do not deny reads.
    monkeypatch.setattr(Path, "read_bytes", denied)
    source = read_source(project / "train.py")

    assert (source.path, source.text) == ("train.py", None)
    assert source.error == "cannot read file: Permission denied"
