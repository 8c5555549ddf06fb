"""Headless Chromium for the HTML report's tests: the DOM after the page's script ran, its console, a screenshot.

Driven through Chromium's own command line (no Playwright, no driver): `--dump-dom` prints the DOM
once the page has loaded and its inline script has run, and `--enable-logging=stderr` prints every
console message and uncaught error as an `INFO:CONSOLE` line.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
# A fresh profile each run and nothing that needs a display, a GPU or a sandbox (CI runs as root).
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions")
_CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")
# Screenshots of every page the tests open, for a person to look at.
SCREENSHOTS = Path(__file__).resolve().parents[1] / "output" / "screenshots"


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path is not None), None)


@dataclass(frozen=True)
class LoadedPage:
    dom: str  # the document after its scripts ran
    console: tuple[str, ...]  # every console message and uncaught error, as Chromium logged it


def load(browser: str, page: Path, profile: Path) -> LoadedPage:
    completed = subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return LoadedPage(completed.stdout, tuple(match.group(1) for match in _CONSOLE.finditer(completed.stderr)))


def screenshot(browser: str, page: Path, profile: Path, name: str, height: int) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / f"{name}.png"
    subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size=1300,{height}", f"--screenshot={target}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return target


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str]  # elements and text, in document order

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        """Descendants with this tag (any when None) whose attributes hold these values (`class_` for class;
        a class matches one of the element's classes)."""
        wanted = {key.rstrip("_").replace("_", "-"): value for key, value in attrs.items()}
        return [
            element
            for element in self.iter()
            if (tag is None or element.tag == tag)
            and all(
                value in element.attrs.get(key, "").split() if key == "class" else element.attrs.get(key) == value
                for key, value in wanted.items()
            )
        ]

    def by_id(self, identifier: str) -> Element:
        [element] = self.find_all(id=identifier)
        return element


_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, [])
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {key: value or "" for key, value in attrs}, [])
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(dom: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(dom)
    builder.close()
    return builder.root
