"""The language server on pygls: editor events in, `Workspace` runs, LSP messages out.

Diagnostics are published for the open documents after every run: at once when a document is
opened or saved, `DEBOUNCE` seconds after the last change while typing. Runs happen one at a time
in a worker thread, so the server keeps reading messages meanwhile; a change during a run starts
another one after it. Each publication carries the document version it was computed for, and
code actions are offered only on a document still at that version.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from mplint import __version__
from mplint.config import display_path
from mplint.errors import ConfigError
from mplint.findings import Applicability, Finding
from mplint.server import protocol
from mplint.server.workspace import Options, Workspace

# Seconds without a change before a run starts while the user types: long enough to take a burst
# of changes as one (the messages of a paste, an auto-indent or a snippet come within a millisecond
# or two of each other), and no longer: every change's diagnostics wait for it, within a budget of
# 150 ms. A run started too early costs CPU only: the change after it starts one more, and each
# publication names the version it was computed for.
DEBOUNCE = 0.010
_WATCHED = ("**/*.py", "**/pyproject.toml", "**/*.toml")


@dataclass(frozen=True)
class Published:
    """What the client was last told about one document: for its code actions and hovers."""

    version: int | None
    text: protocol.Text
    diagnostics: tuple[tuple[Finding, types.Diagnostic], ...]


class MplintServer(LanguageServer):
    """The server's state: the workspace it checks, the open documents and what each was told."""

    def __init__(self) -> None:
        super().__init__(protocol.SOURCE, __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.state: Workspace | None = None
        self.docs: dict[str, str] = {}
        self.open_documents: dict[str, str] = {}  # path -> uri
        self.published: dict[str, Published] = {}  # by uri
        self._dirty = asyncio.Event()
        self._due = 0.0
        self._shown_error: str | None = None

    def buffer_changed(self, uri: str, delay: float) -> None:
        """Take the document's text as the editor now holds it, and check it after `delay`."""
        path = _path_of(uri)
        if path is None or self.state is None:
            return  # not a file (an untitled buffer): nothing to check it with
        self.open_documents[path] = uri
        self.state.open(path, self.workspace.get_text_document(uri).source)
        self.schedule(delay)

    def schedule(self, delay: float) -> None:
        self._due = asyncio.get_running_loop().time() + delay
        self._dirty.set()

    async def lint_when_asked(self) -> None:
        """Run whenever `schedule` asks, once its delay has passed, and publish what is found."""
        loop = asyncio.get_running_loop()
        while True:
            await self._dirty.wait()
            while (wait := self._due - loop.time()) > 0:
                await asyncio.sleep(wait)
            self._dirty.clear()
            if self.state is None:
                continue
            buffers = self.state.buffers()
            versions = {uri: self.workspace.get_text_document(uri).version for uri in self.open_documents.values()}
            try:
                found = await asyncio.to_thread(self.state.lint, buffers)
            except Exception as error:  # noqa: BLE001 - a rule's bug must not stop the server
                self.show_error(f"internal error: {error}; please report this at the mplint issue tracker")
                continue
            self.show_config_error()
            self.publish(found, buffers, versions)

    def publish(
        self, found: dict[str, list[Finding]], buffers: dict[str, str], versions: dict[str, int | None]
    ) -> None:
        for path, uri in list(self.open_documents.items()):
            if path not in buffers or uri not in versions:
                continue  # opened during the run: the next run covers it
            text = protocol.Text(buffers[path], self.workspace.position_codec)
            pairs = tuple(
                (finding, protocol.diagnostic(finding, text, uri, self.docs)) for finding in found.get(path, [])
            )
            self.published[uri] = Published(versions[uri], text, pairs)
            diagnostics = [diagnostic for _, diagnostic in pairs]
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, diagnostics, versions[uri]))

    def show_config_error(self) -> None:
        error = self.state.config_error if self.state is not None else None
        if error is not None and error != self._shown_error:
            self.show_error(f"{error} (nothing is checked until it is fixed)")
        self._shown_error = error

    def show_error(self, message: str) -> None:
        self.window_show_message(types.ShowMessageParams(types.MessageType.Error, f"mplint: {message}"))

    def current(self, uri: str) -> Published | None:
        """What was published for the document, if it still describes the text in the editor."""
        published = self.published.get(uri)
        if published is None or published.version != self.workspace.get_text_document(uri).version:
            return None
        return published


def initialize(ls: MplintServer, params: types.InitializeParams) -> None:
    folders = params.workspace_folders or []
    root_uri = folders[0].uri if folders else params.root_uri
    named = to_fs_path(root_uri) if root_uri else None
    root = Path(named) if named and os.path.isdir(named) else Path(os.getcwd())  # no folder: where it started
    # Findings name files relative to the working directory, as the CLI run at the root would.
    os.chdir(root)
    try:
        options = Options.from_client(params.initialization_options)
    except ConfigError as error:
        options = Options()
        ls.show_error(str(error))
    ls.state = Workspace(root.resolve(), options)
    ls.docs = protocol.write_rule_docs(ls.state.root)


def initialized(ls: MplintServer, params: types.InitializedParams) -> None:
    watched = ls.client_capabilities.workspace and ls.client_capabilities.workspace.did_change_watched_files
    if watched and watched.dynamic_registration:
        watchers = [types.FileSystemWatcher(glob_pattern=pattern) for pattern in _WATCHED]
        registration = types.Registration(
            id="mplint-watched-files",
            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers),
        )
        ls.client_register_capability(types.RegistrationParams([registration]))
    asyncio.get_running_loop().create_task(ls.lint_when_asked())
    ls.show_config_error()


def did_open(ls: MplintServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.buffer_changed(params.text_document.uri, delay=0.0)


def did_change(ls: MplintServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.buffer_changed(params.text_document.uri, delay=DEBOUNCE)


def did_save(ls: MplintServer, params: types.DidSaveTextDocumentParams) -> None:
    saved_on_disk(ls, [params.text_document.uri])


def did_close(ls: MplintServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    path = _path_of(uri)
    if path is not None and ls.state is not None:
        ls.state.close(path)
        ls.open_documents.pop(path, None)
    ls.published.pop(uri, None)
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri, []))
    ls.schedule(0.0)  # other files' findings may have come from its unsaved text


def did_change_watched_files(ls: MplintServer, params: types.DidChangeWatchedFilesParams) -> None:
    if ls.state is not None and any(
        change.type != types.FileChangeType.Changed or change.uri.endswith(".toml") for change in params.changes
    ):
        ls.state.reload()  # files created or deleted, or a configuration file changed
        ls.show_config_error()
    saved_on_disk(ls, [change.uri for change in params.changes])


def saved_on_disk(ls: MplintServer, uris: Sequence[str]) -> None:
    """Check again with these files as they are on disk now."""
    paths = [path for path in map(_path_of, uris) if path is not None]
    if ls.state is not None:
        ls.state.saved(paths)
    ls.schedule(0.0)


def did_change_configuration(ls: MplintServer, params: types.DidChangeConfigurationParams) -> None:
    if ls.state is None:
        return
    try:
        options = Options.from_client(params.settings)
    except ConfigError as error:
        ls.show_error(str(error))
        return
    ls.state.reload(options)
    ls.show_config_error()
    ls.schedule(0.0)


async def code_action(ls: MplintServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    published, path = ls.current(uri), _path_of(uri)
    if published is None or path is None or ls.state is None:
        return None
    only = params.context.only
    actions: list[types.CodeAction] = []
    if _wanted(types.CodeActionKind.QuickFix, only):
        for finding, diagnostic in published.diagnostics:
            if not _overlaps(diagnostic.range, params.range):
                continue
            if finding.fix is not None:
                actions.append(protocol.fix_action(finding, finding.fix, published.text, uri, diagnostic))
            silenced = ls.state.noqa_text(path, [finding])
            if silenced is not None:
                edit = published.text.replaced_by(silenced)
                actions.append(protocol.noqa_action(finding, edit, uri, diagnostic))
    safe = any(f.fix and f.fix.applicability is Applicability.SAFE for f, _ in published.diagnostics)
    if safe and _wanted(protocol.FIX_ALL_KIND, only):
        if only:  # asked for by kind (fix on save): the edit itself
            change = await asyncio.to_thread(ls.state.fixed_text, path)
            if change is not None:
                text = protocol.Text(change.before, ls.workspace.position_codec)
                actions.append(protocol.fix_all_action(uri, text.replaced_by(change.after)))
        else:
            actions.append(protocol.fix_all_action(uri))
    return actions


async def fix_all(ls: MplintServer, uri: str) -> None:
    """`mplint.fixAll`: apply every safe fix of the document, through the client."""
    path = _path_of(uri)
    if path is None or ls.state is None:
        return
    change = await asyncio.to_thread(ls.state.fixed_text, path)
    if change is None:
        return
    edit = protocol.Text(change.before, ls.workspace.position_codec).replaced_by(change.after)
    label = f"mplint: {change.fixed} fix{'es' if change.fixed != 1 else ''}"
    await ls.workspace_apply_edit_async(
        types.ApplyWorkspaceEditParams(types.WorkspaceEdit(changes={uri: [edit]}), label=label)
    )


def hover(ls: MplintServer, params: types.HoverParams) -> types.Hover | None:
    published = ls.current(params.text_document.uri)
    if published is None:
        return None
    under = [finding for finding, diagnostic in published.diagnostics if _contains(diagnostic.range, params.position)]
    return protocol.hover(under, published.text)


def make_server() -> MplintServer:
    """The server with its handlers (pygls passes each the server as `ls`)."""
    ls = MplintServer()
    handlers: dict[str, Callable[..., object]] = {
        types.INITIALIZE: initialize,
        types.INITIALIZED: initialized,
        types.TEXT_DOCUMENT_DID_OPEN: did_open,
        types.TEXT_DOCUMENT_DID_CHANGE: did_change,
        types.TEXT_DOCUMENT_DID_SAVE: did_save,
        types.TEXT_DOCUMENT_DID_CLOSE: did_close,
        types.WORKSPACE_DID_CHANGE_WATCHED_FILES: did_change_watched_files,
        types.WORKSPACE_DID_CHANGE_CONFIGURATION: did_change_configuration,
        types.TEXT_DOCUMENT_HOVER: hover,
    }
    for method, handler in handlers.items():
        ls.feature(method)(handler)
    kinds = types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, protocol.FIX_ALL_KIND])
    ls.feature(types.TEXT_DOCUMENT_CODE_ACTION, kinds)(code_action)
    ls.command(protocol.FIX_ALL_COMMAND)(fix_all)
    return ls


def _path_of(uri: str) -> str | None:
    """The document's path as findings name it; None for a document that is not a file."""
    filename = to_fs_path(uri) if uri.startswith("file:") else None
    if not filename:
        return None
    path = display_path(filename)
    # Not under the root as the client spells it: the root may be reached through a symbolic link
    # (the working directory is always the resolved one).
    return display_path(os.path.realpath(filename)) if os.path.isabs(path) else path


def _wanted(kind: str, only: Sequence[str] | None) -> bool:
    """Whether an action of `kind` was asked for (`source.fixAll` asks for `source.fixAll.mplint`)."""
    return not only or any(kind == wanted or kind.startswith(f"{wanted}.") for wanted in only)


def _key(position: types.Position) -> tuple[int, int]:
    return position.line, position.character


def _overlaps(first: types.Range, second: types.Range) -> bool:
    return _key(first.start) <= _key(second.end) and _key(second.start) <= _key(first.end)


def _contains(span: types.Range, position: types.Position) -> bool:
    return _key(span.start) <= _key(position) <= _key(span.end)


def serve() -> None:
    """Speak LSP on stdin and stdout until the client says `exit`."""
    make_server().start_io()
