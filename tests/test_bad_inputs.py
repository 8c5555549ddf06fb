"""Inputs a linter meets in the wild and must survive: odd encodings and whitespace, binary and
huge files, absurd nesting, old and new syntax, unreadable and oddly named paths, big trees.

Whatever the input, a run ends with findings, MP000 or a clean pass and exits 0 or 1; it never
prints a traceback or exits 2. Process-level properties (exit codes, output streams, memory)
run `python -m mplint` for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mplint.api import fix_source, lint_paths, lint_source
from mplint.findings import Finding

# A bf16 policy whose log-probs are taken without a cast: MP001 on line 5.
POLICY = """\
import torch
import torch.nn.functional as F

policy = torch.nn.Linear(16, 16).to(torch.bfloat16)
logp = F.log_softmax(policy(torch.randn(4, 16)), dim=-1)
"""
POLICY_FINDING_LINE = 5


def run_mplint(
    *args: str, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mplint", *args],
        cwd=cwd,
        capture_output=True,
        check=False,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
    )


def codes(findings: list[Finding]) -> list[tuple[int, str]]:
    return [(finding.line, finding.code) for finding in findings]


def assert_survived(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr


# --- Text that is odd but valid ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\n\n\n", id="blank-lines"),
        pytest.param(
            b"# train.py: bf16 policy, see README\n# TODO: autocast\n",
            id="only-comments",
        ),
        pytest.param(b"\xef\xbb\xbf", id="only-a-bom"),
        pytest.param(b"\x0c\n", id="only-a-form-feed"),
        pytest.param(b'"""Trains the bf16 policy."""', id="docstring-without-newline"),
    ],
)
def test_files_with_nothing_to_check_pass(data: bytes) -> None:
    assert lint_source(data, "train.py", select=["ALL"]) == []


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\xef\xbb\xbf" + POLICY.encode(), id="bom"),
        pytest.param(POLICY.replace("\n", "\r\n").encode(), id="crlf"),
        pytest.param(POLICY.replace("\n", "\r").encode(), id="cr-only"),
        pytest.param(POLICY.replace("\nlogp", "\n\x0clogp").encode(), id="form-feed"),
        pytest.param(
            POLICY.encode() + b"# coding trailer, no newline", id="no-final-newline"
        ),
        pytest.param(
            b"# -*- coding: latin-1 -*-\n"
            + POLICY.encode()
            + "# caf\xe9\n".encode("latin-1"),
            id="latin-1-cookie",
        ),
    ],
)
def test_encodings_and_line_endings_do_not_hide_a_finding(data: bytes) -> None:
    cookie_lines = data.count(b"coding: latin-1")

    findings = lint_source(data, "train.py", select=["ALL"])

    assert codes(findings) == [(POLICY_FINDING_LINE + cookie_lines, "MP001")]


def test_tab_indentation_is_analysed_like_spaces() -> None:
    source = textwrap.dedent(
        """\
        import torch
        import torch.nn.functional as F

        def policy_logprobs(policy, batch):
        \tlogits = policy.to(torch.bfloat16)(batch)
        \treturn F.log_softmax(logits, dim=-1)
        """
    )

    assert codes(lint_source(source, "train.py", select=["ALL"])) == [(6, "MP001")]


def test_a_fix_keeps_crlf_and_tabs() -> None:
    source = POLICY.replace("logp =", "if True:\n\tlogp =").replace("\n", "\r\n")

    result = fix_source(source, "train.py", unsafe=True, select=["MP001"])

    (change,) = result.changes
    assert (
        "\tlogp = F.log_softmax(policy(torch.randn(4, 16)).float(), dim=-1)\r\n"
        in change.after
    )
    assert change.after.count("\r\n") == source.count("\r\n")
    assert "\n" not in change.after.replace("\r\n", "")


# --- Bytes that are not Python text -----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(
            b"policy = 'caf\xe9'\n# bfloat16\n", "not valid UTF-8", id="latin-1-bytes"
        ),
        pytest.param(
            b"\xff\xfe" + "import torch\n".encode("utf-16-le"), "binary", id="utf-16"
        ),
        pytest.param(bytes(range(256)) * 4, "binary", id="all-bytes"),
        pytest.param(b"\x7fELF\x02\x01\x01\x00" + os.urandom(64), "binary", id="elf"),
        pytest.param(
            b"# -*- coding: klingon -*-\nimport torch\n", "encoding", id="unknown-codec"
        ),
    ],
)
def test_undecodable_bytes_are_one_mp000(data: bytes, reason: str) -> None:
    (finding,) = lint_source(data, "train.py", select=["ALL"])

    assert finding.code == "MP000"
    assert reason in finding.message


def test_a_binary_file_named_py_does_not_stop_the_run(tmp_path: Path) -> None:
    (tmp_path / "weights.py").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 64)
    (tmp_path / "train.py").write_text(POLICY, encoding="utf-8")

    result = run_mplint(".", cwd=tmp_path)

    assert_survived(result)
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        "train.py",
        "weights.py",
    ]
    assert "binary file" in result.stdout


# --- Size --------------------------------------------------------------------------------------


# What the parse tree, the precision model and the walks may hold per byte of source, on top of
# the interpreter with mplint loaded. libcst keeps every token and every run of whitespace as a
# node: measured ~450 bytes per byte on the 1 MB file (747 MiB peak); it was ~180 with CPython's ast.
BYTES_PER_SOURCE_BYTE = 600
BASE_KIB = 300 * 2**10


@pytest.mark.parametrize(
    "megabytes",
    [pytest.param(1, id="1-MB"), pytest.param(10, id="10-MB", marks=pytest.mark.slow)],
)
def test_a_huge_generated_file_is_parsed_in_bounded_memory(
    tmp_path: Path, megabytes: int
) -> None:
    # Many small training steps, each mentioning bfloat16 so the prefilter cannot skip the
    # file: the whole file really goes through the parser and the precision model.
    step = textwrap.dedent(
        """\
        def step_{n}(policy, batch):
            logits = policy.to(torch.bfloat16)(batch)
            return F.log_softmax(logits.float(), dim=-1)

        """
    )
    steps = ["import torch\nimport torch.nn.functional as F\n\n"]
    size = len(steps[0])
    while size < megabytes * 2**20:
        steps.append(step.format(n=len(steps)))
        size += len(steps[-1])
    (tmp_path / "generated.py").write_text("".join(steps), encoding="utf-8")
    measure = textwrap.dedent(
        """\
        import resource
        from mplint.api import lint_paths
        result = lint_paths(["generated.py"], select=["ALL"])
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(result.files_checked, len(result.findings), peak_kib)
        """
    )

    completed = subprocess.run(
        [sys.executable, "-c", measure],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        timeout=1200,
    )

    assert completed.returncode == 0, completed.stderr
    files_checked, findings, peak_kib = map(int, completed.stdout.split())
    assert (files_checked, findings) == (1, 0)
    assert peak_kib < BASE_KIB + size * BYTES_PER_SOURCE_BYTE // 1024, (
        f"peak RSS {peak_kib // 1024} MiB"
    )


def test_a_directory_of_10000_small_files(tmp_path: Path) -> None:
    for package in range(100):
        directory = tmp_path / "experiments" / f"run_{package:03d}"
        directory.mkdir(parents=True)
        for module in range(100):
            (directory / f"config_{module:03d}.py").write_text(
                f"LEARNING_RATE = {module}e-4\nBATCH_SIZE = {package}\n",
                encoding="utf-8",
            )
    (tmp_path / "experiments" / "run_000" / "train.py").write_text(
        POLICY, encoding="utf-8"
    )

    result = run_mplint("experiments", cwd=tmp_path, timeout=600)

    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("experiments/run_000/train.py:5:")
    assert result.stderr.strip() == "Found 1 finding in 1 file."


# --- Nesting -----------------------------------------------------------------------------------

BF16 = "import torch\nimport torch.nn.functional as F\nx = torch.randn(4, 16).to(torch.bfloat16)\n"


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            BF16 + "y = " + "(" * 1000 + "x" + ")" * 1000 + "\n", id="1000-parentheses"
        ),
        pytest.param(
            BF16 + "y = " + " + ".join(["x"] * 1200) + "\n", id="1200-term-sum"
        ),
        pytest.param(
            BF16 + "y = " + "f(" * 400 + "x" + ")" * 400 + "\n", id="400-nested-calls"
        ),
        pytest.param(BF16 + "y = x" + ".half()" * 700 + "\n", id="700-method-chain"),
        pytest.param(BF16 + "y = x" + "[0]" * 700 + "\n", id="700-subscripts"),
        pytest.param(
            BF16 + "y = " + "[" * 600 + "]" * 600 + "\n", id="600-nested-lists"
        ),
        pytest.param(BF16 + "y = " + "-" * 2000 + "x\n", id="2000-unary-minus"),
        pytest.param(
            BF16 + "y = " + "x if x else " * 800 + "x\n", id="800-conditionals"
        ),
        pytest.param(BF16 + "f = " + "lambda: " * 800 + "x\n", id="800-lambdas"),
        pytest.param(
            BF16 + "logp = F.log_softmax(" + " + ".join(["x"] * 600) + ", dim=-1)\n",
            id="log-softmax-of-600-terms",
        ),
        pytest.param(
            "".join(
                " " * depth + "with torch.autocast('cuda'):\n" for depth in range(120)
            )
            + " " * 120
            + "loss.backward()\n",
            id="120-nested-with",
        ),
        pytest.param(
            BF16
            + "if k == 0:\n    y = 0\n"
            + "".join(f"elif k == {n}:\n    y = {n}\n" for n in range(1, 4000))
            + "else:\n    logp = F.log_softmax(x, dim=-1)\n",
            id="4000-branch-elif-chain-with-a-finding",
        ),
        # No trigger word: only CPython's parser sees it, and it gives up at this depth.
        pytest.param(
            "y = " + " + ".join(["x"] * 5000) + "\n", id="5000-term-sum-unanalysed"
        ),
    ],
)
def test_deep_nesting_is_findings_mp000_or_clean_never_an_error(source: str) -> None:
    findings = lint_source(source, "train.py", select=["ALL"])
    fixed = fix_source(source, "train.py", unsafe=True, select=["ALL"])

    assert all(isinstance(finding, Finding) for finding in findings)
    assert not fixed.notices
    for finding in findings:
        if finding.code == "MP000":
            assert finding.message.startswith(
                ("cannot analyse: nested too deeply", "cannot parse")
            )


def test_deep_nesting_through_the_command_line_exits_0_or_1(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text(
        BF16 + "y = x" + ".float()" * 700 + "\n", encoding="utf-8"
    )
    (tmp_path / "train.py").write_text(POLICY, encoding="utf-8")

    result = run_mplint(".", "--select", "ALL", cwd=tmp_path)

    assert_survived(result)
    # Analysed, or MP000 where it is deeper than mplint follows; either way the run goes on.
    deep = [line for line in result.stdout.splitlines() if line.startswith("deep.py:")]
    too_deep = "deep.py:1:1: MP000 [invalid-syntax] cannot analyse: nested too deeply"
    assert deep in ([], [too_deep])
    assert f"train.py:{POLICY_FINDING_LINE}:" in result.stdout


# --- Syntax, old and new ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "line"),
    [
        pytest.param(
            "import torch\nprint 'bfloat16 policy'\n", 2, id="print-statement"
        ),
        pytest.param("import torch\nexec 'x = 1'\n", 2, id="exec-statement"),
        pytest.param(
            "import torch\ntry:\n    pass\nexcept ValueError, error:\n    pass\n",
            4,
            id="except-comma",
        ),
        pytest.param("import torch\nsteps = 10L\n", 2, id="long-literal"),
        pytest.param("import torch\nif steps <> 0:\n    pass\n", 2, id="diamond"),
    ],
)
def test_python_2_syntax_is_one_mp000_on_its_line(source: str, line: int) -> None:
    source += "dtype = 'bfloat16'\n"  # the prefilter then hands the file to the analysis

    findings = lint_source(source, "train.py", select=["ALL"])

    assert codes(findings) == [(line, "MP000")]


NEW_SYNTAX = {
    "match": """
        match batch:
            case {"input_ids": ids, **rest} if ids is not None:
                logits = policy(ids)
            case [ids, *_]:
                logits = policy(ids)
            case _:
                raise ValueError(batch)
        logp = F.log_softmax(logits, dim=-1)  # expect
    """,
    "pep695-type-params": """
        type Batch[T] = dict[str, T]

        def forward[T: torch.Tensor](model: torch.nn.Module, batch: Batch[T]) -> T:
            return model(batch["input_ids"])

        class Trainer[T]:
            def step(self, batch: Batch[T]) -> None:
                logp = F.log_softmax(policy(batch["input_ids"]), dim=-1)  # expect
    """,
    "pep701-fstrings": """
        logits = policy(batch)
        print(f"{f"{logits.dtype!r:>{10}}"}: {"nested" + f'{"quotes"}'}")
        logp = F.log_softmax(logits, dim=-1)  # expect
    """,
    "walrus-and-async-comprehension": """
        async def score(stream):
            return [F.log_softmax(logits, dim=-1) async for batch in stream if (logits := policy(batch)) is not None]  # expect
    """,
    "exception-groups": """
        try:
            logits = policy(batch)
        except* RuntimeError as group:
            raise
        logp = F.log_softmax(logits, dim=-1)  # expect
    """,
    "positional-only-and-star-unpacking": """
        def forward(model, /, *batches, **options):
            return model(*batches, **options)

        logp = F.log_softmax(forward(policy, *[batch]), dim=-1)  # expect
    """,
}


@pytest.mark.parametrize("case", list(NEW_SYNTAX))
def test_new_syntax_is_analysed_whatever_python_runs_mplint(case: str) -> None:
    """libcst parses every grammar up to its release: PEP 695 and PEP 701 files are analysed on 3.11 too."""
    header = "import torch\nimport torch.nn.functional as F\npolicy = torch.nn.Linear(16, 16).to(torch.bfloat16)\n"
    source = header + textwrap.dedent(NEW_SYNTAX[case])
    expected = [
        number
        for number, line in enumerate(source.splitlines(), 1)
        if line.endswith("# expect")
    ]

    findings = lint_source(source, "train.py", select=["ALL"])

    assert "MP000" not in {finding.code for finding in findings}
    assert [finding.line for finding in findings if finding.code == "MP001"] == expected


# --- Paths --------------------------------------------------------------------------------------


def test_a_symlink_loop_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(POLICY, encoding="utf-8")
    (tmp_path / "src" / "again").symlink_to(tmp_path / "src", target_is_directory=True)
    (tmp_path / "src" / "loop_a.py").symlink_to(tmp_path / "src" / "loop_b.py")
    (tmp_path / "src" / "loop_b.py").symlink_to(tmp_path / "src" / "loop_a.py")

    result = run_mplint("src", cwd=tmp_path, timeout=60)

    assert_survived(result)
    lines = result.stdout.splitlines()
    assert lines[0].startswith(
        "src/loop_a.py:1:1: MP000 [invalid-syntax] cannot read file: "
    )
    assert lines[1].startswith(
        "src/loop_b.py:1:1: MP000 [invalid-syntax] cannot read file: "
    )
    assert lines[2].startswith(f"src/train.py:{POLICY_FINDING_LINE}:")
    assert len(lines) == 3


def test_an_unreadable_file_is_an_mp000_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret.py").write_text("import torch\n", encoding="utf-8")
    (tmp_path / "train.py").write_text(POLICY, encoding="utf-8")
    real_read_bytes = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        # chmod 000 does not stop root (CI runs as root): raise what open() would.
        if path.name == "secret.py":
            raise PermissionError(13, "Permission denied", str(path))
        return real_read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.chdir(tmp_path)

    result = lint_paths(["."], select=["ALL"])

    assert [(f.path, f.code, f.message) for f in result.findings] == [
        ("secret.py", "MP000", "cannot read file: Permission denied"),
        ("train.py", "MP001", result.findings[1].message),
    ]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_chmod_000_file_through_the_command_line(tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("import torch\n", encoding="utf-8")
    secret.chmod(0)

    result = run_mplint(".", cwd=tmp_path)

    assert_survived(result)
    assert result.stdout.startswith(
        "secret.py:1:1: MP000 [invalid-syntax] cannot read file: Permission denied"
    )


@pytest.mark.parametrize(
    "relative",
    [
        "my experiments/train run.py",
        "données/entraîne.py",
        "実験/学習.py",
        "emoji 🚀/train.py",
    ],
)
def test_paths_with_spaces_and_non_ascii_names(tmp_path: Path, relative: str) -> None:
    (tmp_path / relative).parent.mkdir(parents=True)
    (tmp_path / relative).write_text(POLICY, encoding="utf-8")

    result = run_mplint(".", cwd=tmp_path)
    named = run_mplint(relative, cwd=tmp_path)

    assert result.returncode == named.returncode == 1
    assert result.stdout.startswith(f"{relative}:{POLICY_FINDING_LINE}:")
    assert named.stdout == result.stdout


# --- Configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            b'[tool.mplint]\nselect = ["MP001"]  # caf\xe9\n',
            "mplint: pyproject.toml: invalid TOML: not valid UTF-8 (byte 0xe9 at offset 39)\n",
            id="latin-1",
        ),
        pytest.param(
            b"\x00\x01[tool.mplint]\n",
            "mplint: pyproject.toml: invalid TOML: ",
            id="binary",
        ),
        pytest.param(
            b'[tool.mplint]\nselect = ["MP001"]\n[tool.mplint]\nignore = []\n',
            "mplint: pyproject.toml: invalid TOML: ",
            id="table-twice",
        ),
    ],
)
def test_a_config_file_that_is_not_toml_is_one_line_and_exit_2(
    tmp_path: Path, config: bytes, message: str
) -> None:
    (tmp_path / "pyproject.toml").write_bytes(config)
    (tmp_path / "train.py").write_text(POLICY, encoding="utf-8")

    result = run_mplint("train.py", cwd=tmp_path)

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


def test_a_long_elif_chain_is_analysed() -> None:
    # Generated dispatch code: one branch per token id, the last one the bug.
    branches = "".join(f"elif token == {n}:\n    scale = {n}\n" for n in range(1, 400))
    source = BF16 + "if token == 0:\n    scale = 0\n" + branches + "else:\n"
    source += "    logp = F.log_softmax(x, dim=-1)\n"

    findings = lint_source(source, "train.py", select=["ALL"])

    assert codes(findings) == [(source.count("\n"), "MP001")]
