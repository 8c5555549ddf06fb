"""A small LSP client for tests and the benchmark: it starts `mplint server` as an editor does and
speaks JSON-RPC to it over the pipes, each message framed by a `Content-Length` header.

A reader thread collects what the server sends: responses by id, notifications in order. Requests
the server makes are answered as an editor would: `workspace/applyEdit` is recorded and accepted,
anything else (`client/registerCapability`) gets a null result.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]
TIMEOUT = 60.0


class ServerError(Exception):
    """The server answered a request with an error, or did not answer in time."""


class Client:
    def __init__(self, root: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.root = root
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mplint", "server"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(extra_env or {})},
        )
        self._next_id = 0
        self._responses: dict[int, Message] = {}
        self._notifications: queue.Queue[Message] = queue.Queue()
        self._arrived = threading.Condition()
        self._closed = False
        self.applied_edits: list[Message] = []
        self.seen: list[Message] = []  # every notification taken so far, in order
        threading.Thread(target=self._read, daemon=True).start()

    # Framing.
    def _send(self, message: Message) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not line or length is None:
                with self._arrived:  # the server closed its output: nothing more will come
                    self._closed = True
                    self._arrived.notify_all()
                return
            message = json.loads(stream.read(length))
            if "id" in message and "method" in message:
                self._answer(message)
            elif "id" in message:
                with self._arrived:
                    self._responses[message["id"]] = message
                    self._arrived.notify_all()
            else:
                self._notifications.put(message)

    def _answer(self, request: Message) -> None:
        result: Any = None
        if request["method"] == "workspace/applyEdit":
            self.applied_edits.append(request["params"])
            result = {"applied": True}
        self._send({"id": request["id"], "result": result})

    # What a test calls.
    def request(self, method: str, params: Any) -> Any:
        self._next_id += 1
        number = self._next_id
        self._send({"id": number, "method": method, "params": params})
        deadline = time.monotonic() + TIMEOUT
        with self._arrived:
            while number not in self._responses:
                if self._closed:
                    raise ServerError(f"the server exited before answering {method}")
                if not self._arrived.wait(deadline - time.monotonic()):
                    raise ServerError(f"no answer to {method} in {TIMEOUT} s")
            response = self._responses.pop(number)
        if "error" in response:
            raise ServerError(response["error"])
        return response.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def next_notification(self, wanted: Callable[[Message], bool], timeout: float = TIMEOUT) -> Message:
        """The next notification `wanted` accepts (those before it are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self._notifications.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise ServerError("no such notification came") from None
            self.seen.append(message)
            if wanted(message):
                return message

    # An editor's steps.
    def initialize(self, initialization_options: Any = None, root_uri: str | None = None) -> Any:
        """Say hello as an editor does, the workspace being `root` unless `root_uri` names another."""
        result = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root_uri or self.root.as_uri(),
                "capabilities": {"workspace": {"didChangeWatchedFiles": {"dynamicRegistration": True}}},
                "initializationOptions": initialization_options,
            },
        )
        self.notify("initialized", {})
        return result

    def uri(self, relative: str) -> str:
        return (self.root / relative).as_uri()

    def open(self, relative: str, text: str | None = None) -> str:
        uri = self.uri(relative)
        text = (self.root / relative).read_text() if text is None else text
        self.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}
        )
        return uri

    def change(self, uri: str, version: int, text: str) -> None:
        """Replace the whole text (a client may send ranges; pygls takes both)."""
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]},
        )

    def diagnostics(self, uri: str, version: int | None = None, timeout: float = TIMEOUT) -> list[Message]:
        """The next diagnostics published for `uri` (for `version` of it, when given)."""

        def wanted(message: Message) -> bool:
            params = message.get("params", {})
            return (
                message.get("method") == "textDocument/publishDiagnostics"
                and params.get("uri") == uri
                and (version is None or params.get("version") == version)
            )

        return list(self.next_notification(wanted, timeout)["params"]["diagnostics"])

    def shutdown(self) -> int:
        self.request("shutdown", None)
        self.notify("exit", None)
        return self.process.wait(timeout=TIMEOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def apply_edits(text: str, edits: list[Message]) -> str:
    """`text` with LSP text edits applied (UTF-16 columns, as the client negotiated by default)."""
    lines = text.splitlines(keepends=True) or [""]

    def offset(position: Message) -> int:
        start = sum(len(line) for line in lines[: position["line"]])
        line = lines[position["line"]] if position["line"] < len(lines) else ""
        units = 0
        for index, char in enumerate(line):
            if units >= position["character"]:
                return start + index
            units += 2 if ord(char) > 0xFFFF else 1
        return start + len(line)

    spans = sorted(((offset(e["range"]["start"]), offset(e["range"]["end"]), e["newText"]) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text
