"""`mplint --fix`, `--unsafe-fixes` and `--diff`: what gets written, what never does.

The fixes come from the test-only rules of tests/fixes/support.py (`.half()` ->
`.to(torch.float16)` safe, `.bfloat16()` -> `.float()` unsafe), registered per test, so these
tests hold whatever fixes the shipped rules offer.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mplint import api, fixes
from mplint.cli import main
from mplint.errors import InternalError
from mplint.findings import Applicability, Edit, Fix
from mplint.run.cache import DIRECTORY
from mplint.text import SourceFile
from tests.fixes import support

REPOSITORY = Path(__file__).resolve().parent.parent

TRAIN = """\
import torch

model = build_model().cuda()
teacher = build_teacher().half()  # frozen: inference only
for batch in loader:
    loss = model(batch).mean()
"""

TRAIN_FIXED = TRAIN.replace(".half()", ".to(torch.float16)")

# One safe fix (line 3) and one unsafe one (line 4).
DISTILL = """\
import torch

teacher = build_teacher().half()
student = build_student().bfloat16()
"""


@pytest.fixture(autouse=True)
def example_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    support.register(monkeypatch, *support.EXAMPLE_RULES)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def mplint(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(main, ["--select", "MP99", *args], input=stdin)


def fixed_text(source: str, *, unsafe: bool = False) -> str:
    result = api.fix_source(source, select=["MP99"], unsafe=unsafe)
    return result.changes[0].after if result.changes else source


def fingerprint(path: Path) -> tuple[bytes, int, int]:
    """Content, inode and modification time: any write, even of the same bytes, changes one."""
    status = path.stat()
    return path.read_bytes(), status.st_ino, status.st_mtime_ns


# Positions and passes


def test_columns_are_characters_so_non_ascii_text_and_tabs_before_the_fix_are_kept() -> None:
    source = 'import torch\nif True:\n\tlabel = "température °C"; t = torch.ones(1).half()\n'

    assert fixed_text(source) == source.replace(".half()", ".to(torch.float16)")


def test_overlapping_fixes_are_applied_over_several_passes() -> None:
    result = api.fix_source("import torch\nx = torch.ones(1).half().half()\n", select=["MP99"])

    assert (
        result.changes[0].after
        == "import torch\nx = torch.ones(1).to(torch.float16).to(torch.float16)\n"
    )
    assert result.fixed == 2
    assert result.findings == ()


def test_a_pass_leaves_out_a_fix_overlapping_one_it_took() -> None:
    outer = Fix("outer", Applicability.SAFE, (Edit(1, 5, 1, 12, "g()"),))  # f(a(1))
    inner = Fix("inner", Applicability.SAFE, (Edit(1, 7, 1, 11, "b"),))  # a(1)
    after = Fix("after", Applicability.SAFE, (Edit(1, 15, 1, 16, "2"),))  # 1

    assert fixes.apply_fixes("x = f(a(1)) + 1\n", [inner, after, outer]) == (
        "x = g() + 2\n",
        (outer, after),
    )


def test_a_fix_that_changes_nothing_does_not_block_one_it_overlaps() -> None:
    same = Fix("same", Applicability.SAFE, (Edit(1, 1, 1, 6, "x = 1"),))
    real = Fix("real", Applicability.SAFE, (Edit(1, 5, 1, 6, "2"),))

    assert fixes.apply_fixes("x = 1\n", [same, real]) == ("x = 2\n", (real,))


def test_newlines_in_a_replacement_follow_the_file() -> None:
    insert = Fix("guard", Applicability.SAFE, (Edit(2, 1, 2, 1, "if scaler:\n    pass\n"),))

    fixed, _ = fixes.apply_fixes("import torch\r\nx = 1\r\n", [insert])

    assert fixed == "import torch\r\nif scaler:\r\n    pass\r\nx = 1\r\n"


def test_an_edit_outside_the_file_is_an_internal_error_naming_it() -> None:
    finding = api.lint_source(TRAIN, "train.py", select=["MP990"])[0]
    stray = Fix("stray", Applicability.SAFE, (Edit(9, 1, 9, 2, ""),))

    with pytest.raises(InternalError, match="applying a fix failed while checking train.py"):
        fixes.fix_sources(
            [SourceFile("train.py", TRAIN)],
            lambda _: [dataclasses.replace(finding, fix=stray)],
            unsafe=False,
        )


def test_a_parenthesized_node_keeps_one_pair_of_parentheses() -> None:
    source = "import torch\nteacher = (build_teacher()\n    .half())  # frozen\n"

    assert fixed_text(source) == source.replace(".half()", ".to(torch.float16)")


def test_unsafe_fixes_apply_only_when_allowed() -> None:
    assert fixed_text(DISTILL) == DISTILL.replace(".half()", ".to(torch.float16)")
    assert fixed_text(DISTILL, unsafe=True) == (
        DISTILL.replace(".half()", ".to(torch.float16)").replace(".bfloat16()", ".float()")
    )


# Writing files


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            TRAIN.replace("\n", "\r\n").encode(),
            TRAIN_FIXED.replace("\n", "\r\n").encode(),
            id="crlf",
        ),
        pytest.param(
            b"\xef\xbb\xbf" + TRAIN.encode(), b"\xef\xbb\xbf" + TRAIN_FIXED.encode(), id="bom"
        ),
        pytest.param(
            b"# -*- coding: latin-1 -*-\n# r\xe9glage fin\n" + TRAIN.encode(),
            b"# -*- coding: latin-1 -*-\n# r\xe9glage fin\n" + TRAIN_FIXED.encode(),
            id="latin-1",
        ),
        pytest.param(
            TRAIN.rstrip("\n").encode(), TRAIN_FIXED.rstrip("\n").encode(), id="no-final-newline"
        ),
    ],
)
def test_fix_keeps_line_endings_and_encoding(project: Path, before: bytes, after: bytes) -> None:
    (project / "train.py").write_bytes(before)

    result = mplint("--fix", "train.py")

    assert (project / "train.py").read_bytes() == after
    assert result.exit_code == 0, result.stderr
    assert result.stderr == "Fixed 1 finding (0 remaining).\n"


def test_fix_keeps_the_file_mode(project: Path) -> None:
    script = project / "train.py"
    script.write_text(TRAIN, encoding="utf-8")
    script.chmod(0o750)

    mplint("--fix", "train.py")

    assert script.read_text(encoding="utf-8") == TRAIN_FIXED
    assert stat.S_IMODE(script.stat().st_mode) == 0o750


def test_fix_through_a_symlink_writes_the_file_and_keeps_the_link(project: Path) -> None:
    (project / "shared").mkdir()
    (project / "shared" / "train.py").write_text(TRAIN, encoding="utf-8")
    (project / "train.py").symlink_to(project / "shared" / "train.py")

    mplint("--fix", "train.py")

    assert (project / "train.py").is_symlink()
    assert (project / "shared" / "train.py").read_text(encoding="utf-8") == TRAIN_FIXED


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_crash_mid_write_leaves_the_original_and_no_temporary_file(
    project: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    script = project / "train.py"
    script.write_text(TRAIN, encoding="utf-8")

    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, failing, crash)
    with pytest.raises(KeyboardInterrupt):
        fixes.write_atomically(script, TRAIN_FIXED.encode())

    assert script.read_text(encoding="utf-8") == TRAIN
    assert os.listdir(project) == ["train.py"]


def test_a_failed_write_is_one_line_and_the_finding_remains(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "train.py").write_text(TRAIN, encoding="utf-8")

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    result = mplint("--fix", ".")

    assert (project / "train.py").read_text(encoding="utf-8") == TRAIN
    # No temporary file left behind (the cache, failing to write too, is only its directory).
    assert sorted(os.listdir(project)) == [DIRECTORY, "train.py"]
    assert os.listdir(project / DIRECTORY) == []
    assert result.exit_code == 1
    assert result.stderr == (
        "mplint: train.py: fixes not written: cannot write it: No space left on device\n"
        "Fixed 0 findings (1 remaining).\n"
    )
    assert result.stdout.startswith("train.py:4:11: MP990 [test-half-call]")


def test_a_fix_whose_result_would_not_parse_is_refused(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    support.register(monkeypatch, support.BrokenFix)
    script = project / "train.py"
    script.write_text(TRAIN, encoding="utf-8")
    before = fingerprint(script)

    result = CliRunner().invoke(main, ["--select", "MP992", "--fix", "train.py"])

    assert fingerprint(script) == before
    assert result.exit_code == 1
    refusal, summary = result.stderr.splitlines()
    assert refusal.startswith(
        "mplint: train.py: fixes not applied: the fixed text would not parse ("
    )
    assert summary == "Fixed 0 findings (1 remaining)."


def test_a_file_changed_since_it_was_read_is_not_overwritten(project: Path) -> None:
    script = project / "train.py"
    script.write_text(TRAIN + "# edited in the editor meanwhile\n", encoding="utf-8")

    with pytest.raises(fixes.FixRefused, match="it changed while mplint was fixing it"):
        fixes.write_fixed(script, TRAIN, TRAIN_FIXED)

    assert script.read_text(encoding="utf-8").endswith("# edited in the editor meanwhile\n")


def test_a_read_only_file_is_not_replaced(project: Path) -> None:
    script = project / "train.py"
    script.write_text(TRAIN, encoding="utf-8")
    script.chmod(0o444)

    result = mplint("--fix", "train.py")

    assert script.read_text(encoding="utf-8") == TRAIN
    assert result.stderr.splitlines()[0] == "mplint: train.py: fixes not written: it is read-only"
    assert result.exit_code == 1


def test_fix_never_writes_a_file_with_nothing_to_fix(project: Path) -> None:
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    (project / "clean.py").write_text(TRAIN_FIXED, encoding="utf-8")
    before = fingerprint(project / "clean.py")

    mplint("--fix", ".")

    assert fingerprint(project / "clean.py") == before


# The command line


def test_fix_exits_1_while_an_unsafe_fix_remains_and_shows_it_unfixable(project: Path) -> None:
    (project / "distill.py").write_text(DISTILL, encoding="utf-8")

    result = mplint("--fix", ".")

    assert result.exit_code == 1
    assert result.stdout == "distill.py:4:11: MP991 [test-bfloat16-call] keep this in fp32\n"
    assert result.stderr == "Fixed 1 finding (1 remaining).\n"


def test_fix_with_unsafe_fixes_applies_both_and_exits_0(project: Path) -> None:
    (project / "distill.py").write_text(DISTILL, encoding="utf-8")

    result = mplint("--fix", "--unsafe-fixes", ".")

    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == "Fixed 2 findings (0 remaining).\n"
    assert "bfloat16" not in (project / "distill.py").read_text(encoding="utf-8")


def test_unsafe_fixes_alone_marks_them_fixable_and_writes_nothing(project: Path) -> None:
    (project / "distill.py").write_text(DISTILL, encoding="utf-8")

    plain, shown = mplint("."), mplint("--unsafe-fixes", ".")

    assert plain.stdout.splitlines()[1].endswith("keep this in fp32")
    assert shown.stdout.splitlines()[1].endswith("keep this in fp32 [*]")
    assert shown.exit_code == 1
    assert (project / "distill.py").read_text(encoding="utf-8") == DISTILL


def test_diff_prints_the_change_and_writes_nothing(project: Path) -> None:
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    before = fingerprint(project / "train.py")

    result = mplint("--diff", ".")

    assert fingerprint(project / "train.py") == before
    assert result.exit_code == 1
    assert result.stdout == (
        "--- a/train.py\n"
        "+++ b/train.py\n"
        "@@ -1,6 +1,6 @@\n"
        " import torch\n"
        " \n"
        " model = build_model().cuda()\n"
        "-teacher = build_teacher().half()  # frozen: inference only\n"
        "+teacher = build_teacher().to(torch.float16)  # frozen: inference only\n"
        " for batch in loader:\n"
        "     loss = model(batch).mean()\n"
    )
    assert result.stderr == "Would fix 1 finding.\n"


def test_diff_marks_a_missing_final_newline(project: Path) -> None:
    (project / "train.py").write_text("import torch\nx = torch.ones(1).half()", encoding="utf-8")

    result = mplint("--diff", "--fix", "train.py")

    assert result.stdout.endswith(
        "-x = torch.ones(1).half()\n\\ No newline at end of file\n"
        "+x = torch.ones(1).to(torch.float16)\n\\ No newline at end of file\n"
    )
    assert (project / "train.py").read_text(encoding="utf-8").endswith(".half()")


def test_diff_exits_0_when_nothing_is_fixable(project: Path) -> None:
    (project / "distill.py").write_text(DISTILL.replace(".half()", ""), encoding="utf-8")

    result = mplint("--diff", ".")

    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == "Would fix 0 findings.\n"


def test_fix_from_stdin_prints_the_fixed_source_and_findings_on_stderr(project: Path) -> None:
    result = mplint("--fix", "-", "--stdin-filename", "distill.py", stdin=DISTILL.encode())

    assert result.exit_code == 1
    assert result.stdout == DISTILL.replace(".half()", ".to(torch.float16)")
    assert result.stderr == (
        "distill.py:4:11: MP991 [test-bfloat16-call] keep this in fp32\n"
        "Fixed 1 finding (1 remaining).\n"
    )
    assert os.listdir(project) == []


def test_fix_from_stdin_echoes_source_it_cannot_decode(project: Path) -> None:
    source = b"import torch\nx = '\xff'.half()\n"

    result = CliRunner().invoke(main, ["--fix", "-"], input=source)

    assert result.stdout_bytes == source
    assert result.exit_code == 1


def test_two_concurrent_fix_runs_leave_every_file_fixed(project: Path) -> None:
    for number in range(40):
        (project / "jobs" / f"job{number:02}").mkdir(parents=True)
        (project / "jobs" / f"job{number:02}" / "train.py").write_text(DISTILL, encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "tests.fixes.support",
        "--select",
        "MP99",
        "--fix",
        "--unsafe-fixes",
        "jobs",
    ]
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}

    runs = [
        subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    expected = DISTILL.replace(".half()", ".to(torch.float16)").replace(".bfloat16()", ".float()")
    assert {path.read_text(encoding="utf-8") for path in project.rglob("*.py")} == {expected}
    written = [path for path in project.rglob("*") if path.is_file() and DIRECTORY not in path.parts]
    assert sorted(path.name for path in written) == ["train.py"] * 40  # no temporary file left
