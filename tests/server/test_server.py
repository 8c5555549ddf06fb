"""`mplint server` driven over its pipes as an editor drives it: initialize, open, change, save,
code actions, commands that edit through the client, hover, configuration, shutdown."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mplint.registry import rule_by_code
from tests.conftest import UNPARSABLE
from tests.server.lsp_client import Client, Message, apply_edits

MODELS = """\
import torch


def build_policy():
    return torch.nn.Linear(16, 4).to(torch.bfloat16)
"""

TRAIN = """\
import torch
import torch.nn.functional as F

from models import build_policy

policy = build_policy()
optimizer = torch.optim.AdamW(policy.parameters())


def step(batch):
    logp = F.log_softmax(policy(batch), dim=-1)
    loss = -logp.mean()
    loss.backward()
    optimizer.step()
"""
# (line, code) of what the server reports on TRAIN with MODELS beside it.
TRAIN_FOUND = [(7, "MP003"), (11, "MP001")]

LEGACY = """\
import torch
from torch.cuda.amp import GradScaler, autocast

model = torch.nn.Linear(4, 4).cuda()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
scaler = GradScaler()


def train_step(batch):
    with autocast():
        loss = model(batch).sum()
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
"""


@pytest.fixture
def project(tmp_path: Path, write_files: Callable) -> Path:
    return write_files(tmp_path, {"models.py": MODELS, "train.py": TRAIN, "legacy.py": LEGACY})


@pytest.fixture
def client(project: Path) -> Iterator[Client]:
    started = Client(project)
    try:
        started.initialize()
        yield started
        assert started.shutdown() == 0  # every test ends as an editor ends a session
    finally:
        started.kill()


def located(diagnostics: list[Message]) -> list[tuple[int, str]]:
    return [(diagnostic["range"]["start"]["line"] + 1, diagnostic["code"]) for diagnostic in diagnostics]


def diagnostics_when(client: Client, uri: str, wanted: Callable[[list[Message]], bool]) -> list[Message]:
    """The first diagnostics published for `uri` that `wanted` accepts: a run for an earlier event
    (opening another file) may publish first. None accepted in the client's timeout fails the test."""
    while not wanted(found := client.diagnostics(uri)):
        pass
    return found


def code_actions(client: Client, uri: str, diagnostic: Message, only: list[str] | None = None) -> list[Message]:
    context: dict[str, Any] = {"diagnostics": [diagnostic]}
    if only is not None:
        context["only"] = only
    params = {"textDocument": {"uri": uri}, "range": diagnostic["range"], "context": context}
    return list(client.request("textDocument/codeAction", params) or [])


def edits_of(action: Message, uri: str) -> list[Message]:
    return list(action["edit"]["changes"][uri])


def test_opening_a_file_publishes_its_findings_with_the_helpers_it_imports(client: Client, project: Path) -> None:
    uri = client.open("train.py")

    diagnostics = client.diagnostics(uri, version=1)

    assert located(diagnostics) == TRAIN_FOUND
    log_softmax = diagnostics[1]
    assert log_softmax["source"] == "mplint"
    assert log_softmax["severity"] == 1  # error
    assert log_softmax["range"] == {"start": {"line": 10, "character": 11}, "end": {"line": 10, "character": 47}}
    # The rule's name leads the message; the origin is named as the CLI names it, relative to the root.
    assert log_softmax["message"] == (
        "[uncast-log-softmax] log_softmax on bfloat16 logits (from `policy`, cast at models.py:5); "
        "cast with .float() first"
    )
    docs = Path(client_path(log_softmax["codeDescription"]["href"]))
    assert docs.is_file() and docs.read_text().startswith("### MP001 `uncast-log-softmax`")


def client_path(uri: str) -> str:
    assert uri.startswith("file://")
    return uri[len("file://") :]


def test_an_unsaved_change_is_checked_together_with_the_files_on_disk(client: Client) -> None:
    uri = client.open("train.py")
    assert located(client.diagnostics(uri, version=1)) == TRAIN_FOUND

    client.change(uri, 2, TRAIN.replace("policy = build_policy()", "policy = build_policy().float()"))
    assert client.diagnostics(uri, version=2) == []

    # Typing the bug back in, in a second function of the buffer.
    client.change(uri, 3, TRAIN + "\n\ndef evaluate(batch):\n    return F.log_softmax(policy(batch), -1)\n")
    assert located(client.diagnostics(uri, version=3)) == [*TRAIN_FOUND, (18, "MP001")]


def test_a_helper_saved_on_disk_is_read_again(client: Client, project: Path) -> None:
    uri = client.open("train.py")
    assert located(client.diagnostics(uri, version=1)) == TRAIN_FOUND

    (project / "models.py").write_text(MODELS.replace("torch.bfloat16", "torch.float32"))
    client.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": client.uri("models.py"), "type": 2}]})

    assert client.diagnostics(uri, version=1) == []


def test_a_helper_the_editor_says_changed_is_read_again_whatever_its_size_and_time(
    client: Client, project: Path
) -> None:
    uri = client.open("train.py")
    assert located(client.diagnostics(uri, version=1)) == TRAIN_FOUND
    models = project / "models.py"
    before = models.stat()

    # The same size, and the old modification time put back: only the editor's word tells.
    models.write_text(MODELS.replace("torch.bfloat16", "torch.float32 "))
    os.utime(models, ns=(before.st_atime_ns, before.st_mtime_ns))
    client.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": client.uri("models.py"), "type": 2}]})

    assert client.diagnostics(uri, version=1) == []


def test_a_helper_open_in_the_editor_is_read_from_its_buffer(client: Client) -> None:
    train = client.open("train.py")
    assert located(client.diagnostics(train, version=1)) == TRAIN_FOUND
    models = client.open("models.py")

    client.change(models, 2, MODELS.replace("torch.bfloat16", "torch.float16"))

    fp16 = diagnostics_when(client, train, lambda found: located(found) != TRAIN_FOUND)
    # fp16 weights: AdamW's default eps underflows too (MP301), and the log-probs are fp16.
    assert located(fp16) == [(7, "MP003"), (7, "MP301"), (11, "MP001")]
    assert "log_softmax on float16 logits" in fp16[2]["message"]


def test_a_file_that_does_not_parse_gets_one_mp000_and_the_server_goes_on(client: Client) -> None:
    uri = client.open("train.py", UNPARSABLE)

    diagnostics = client.diagnostics(uri, version=1)

    assert located(diagnostics) == [(2, "MP000")]
    assert diagnostics[0]["message"].startswith("[invalid-syntax] cannot parse")
    # The edit goes on, the file parses again: the server still answers and checks it.
    assert code_actions(client, uri, diagnostics[0]) == []
    client.change(uri, 2, TRAIN)
    assert located(client.diagnostics(uri, version=2)) == TRAIN_FOUND


def test_configuration_changes_are_followed(client: Client, project: Path) -> None:
    uri = client.open("train.py")
    assert located(client.diagnostics(uri, version=1)) == TRAIN_FOUND
    pyproject = project / "pyproject.toml"

    pyproject.write_text('[tool.mplint]\nignore = ["MP001"]\n')
    client.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": client.uri("pyproject.toml"), "type": 1}]})
    assert located(client.diagnostics(uri)) == [(7, "MP003")]

    # A broken configuration: said once, in one line, and nothing is reported until it is fixed.
    pyproject.write_text('[tool.mplint]\nselct = ["MP001"]\n')
    client.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": client.uri("pyproject.toml"), "type": 2}]})
    shown = client.next_notification(lambda message: message["method"] == "window/showMessage")
    assert shown["params"]["message"].startswith(
        "mplint: pyproject.toml: [tool.mplint] unknown key 'selct' (did you mean 'select'?)"
    )
    assert client.diagnostics(uri) == []

    # The editor's own settings layer on top of the file, as --select does.
    pyproject.write_text("[tool.mplint]\n")
    client.notify("workspace/didChangeConfiguration", {"settings": {"mplint": {"select": ["MP003"]}}})
    assert located(client.diagnostics(uri)) == [(7, "MP003")]


def test_a_fix_is_offered_marked_unsafe_and_a_noqa_for_the_line(client: Client) -> None:
    uri = client.open("train.py")
    log_softmax = client.diagnostics(uri, version=1)[1]

    actions = code_actions(client, uri, log_softmax)

    titles = [action["title"] for action in actions]
    assert titles == ["Cast the logits to fp32 at the op (MP001, unsafe)", "Add `# noqa: MP001` (silence this finding)"]
    fix, noqa = actions
    assert fix["kind"] == "quickfix" and fix["isPreferred"] is False
    fixed = apply_edits(TRAIN, edits_of(fix, uri))
    assert fixed == TRAIN.replace("F.log_softmax(policy(batch), dim=-1)", "F.log_softmax(policy(batch).float(), dim=-1)")
    silenced = apply_edits(TRAIN, edits_of(noqa, uri))
    assert silenced == TRAIN.replace("dim=-1)\n", "dim=-1)  # noqa: MP001\n")


def test_fix_all_applies_the_safe_fixes_through_the_client(client: Client) -> None:
    uri = client.open("legacy.py")
    deprecated = client.diagnostics(uri, version=1)
    assert located(deprecated) == [(2, "MP203")]
    expected = (
        LEGACY.replace("from torch.cuda.amp", "from torch.amp")
        .replace("GradScaler()", 'GradScaler("cuda")')
        .replace("autocast()", 'autocast("cuda")')
    )

    fix_all = [action for action in code_actions(client, uri, deprecated[0]) if action["kind"] == "source.fixAll.mplint"]
    assert [action["command"]["command"] for action in fix_all] == ["mplint.fixAll"]
    client.request("workspace/executeCommand", fix_all[0]["command"])

    [applied] = client.applied_edits
    assert apply_edits(LEGACY, applied["edit"]["changes"][uri]) == expected
    # Asked for by kind, as on save: the edit itself.
    [on_save] = code_actions(client, uri, deprecated[0], only=["source.fixAll"])
    assert apply_edits(LEGACY, edits_of(on_save, uri)) == expected


def test_no_code_action_on_a_document_changed_since_its_diagnostics(client: Client) -> None:
    uri = client.open("train.py")
    log_softmax = client.diagnostics(uri, version=1)[1]
    client.change(uri, 2, "\n" + TRAIN)  # every line moved: version 1's edits would land a line too high

    assert code_actions(client, uri, log_softmax) == []


def test_hover_over_a_finding_shows_its_rule_documentation(client: Client) -> None:
    uri = client.open("train.py")
    client.diagnostics(uri, version=1)

    def hover(line: int, character: int) -> Any:
        params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}}
        return client.request("textDocument/hover", params)

    shown = hover(10, 20)
    rule = rule_by_code("MP001")
    assert rule is not None
    assert shown["contents"]["kind"] == "markdown"
    assert shown["contents"]["value"] == f"### MP001 `uncast-log-softmax`\n\n{rule.docs()}"
    assert hover(0, 3) is None


def test_columns_are_counted_in_utf16_as_the_client_counts_them(client: Client) -> None:
    # An emoji is one character to Python and two UTF-16 units to the client.
    text = TRAIN.replace("    logp = F.log_softmax", '    tag = "🔥"; logp = F.log_softmax')
    uri = client.open("train.py", text)

    log_softmax = client.diagnostics(uri, version=1)[1]

    line = text.splitlines()[10]
    assert log_softmax["range"]["start"] == {"line": 10, "character": line.index("F.log_softmax") + 1}
    [fix, _] = code_actions(client, uri, log_softmax)
    assert "F.log_softmax(policy(batch).float(), dim=-1)" in apply_edits(text, edits_of(fix, uri))


def test_closing_a_document_clears_its_diagnostics(client: Client) -> None:
    uri = client.open("train.py")
    assert client.diagnostics(uri, version=1)

    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    assert client.diagnostics(uri) == []


def test_the_linter_never_imports_the_server_libraries() -> None:
    probe = textwrap.dedent(
        """\
        import sys
        from mplint.api import lint_paths
        from mplint.cli import main
        lint_paths(["examples"])
        print(sorted({name.split(".")[0] for name in sys.modules} & {"pygls", "lsprotocol", "cattrs"}))
        """
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def test_the_server_without_its_extra_says_how_to_install_it() -> None:
    # pygls made unimportable, as in an install without the `server` extra.
    probe = textwrap.dedent(
        """\
        import sys
        sys.modules["pygls"] = None
        from mplint.cli import main
        main(["server"], prog_name="mplint")
        """
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr == "mplint: `mplint server` needs pygls: pip install 'mplint[server]'\n"


def test_a_root_reached_through_a_symbolic_link(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    link = tmp_path_factory.mktemp("links") / "project"
    link.symlink_to(project, target_is_directory=True)
    client = Client(link)  # the client names files under the link; the server's directory is the target
    try:
        client.initialize()
        train = client.open("train.py")
        assert located(client.diagnostics(train, version=1)) == TRAIN_FOUND
        # The open helper stands in for the file on disk, named as under the root (not as a file
        # outside it, by the link's absolute path).
        models = client.open("models.py")
        client.change(models, 2, MODELS.replace("torch.bfloat16", "torch.float16"))
        fp16 = diagnostics_when(client, train, lambda found: located(found) != TRAIN_FOUND)
        assert fp16[2]["message"].startswith(
            "[uncast-log-softmax] log_softmax on float16 logits (from `policy`, cast at models.py:5)"
        )
        assert client.shutdown() == 0
    finally:
        client.kill()


def test_a_root_that_does_not_exist_falls_back_to_where_the_server_started(project: Path) -> None:
    client = Client(project)
    try:
        client.initialize(root_uri=(project / "moved-away").as_uri())
        uri = client.open("train.py")
        assert located(client.diagnostics(uri, version=1)) == TRAIN_FOUND
        assert client.shutdown() == 0
    finally:
        client.kill()
