"""A progress line rewritten in place on a terminal's stderr, for runs long enough to need one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO


class ProgressLine:
    """Rewrites one line of `stream` with what `update` is told: only from `delay` seconds after the
    line was made (a run that ends sooner prints nothing) and at most every `interval` seconds.
    `close` erases it, so what is printed next starts on a clean line."""

    def __init__(
        self,
        stream: TextIO,
        *,
        delay: float = 1.0,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self._next = self.started + delay
        self._interval = interval
        self._width = 0

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started

    def update(self, text: str) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self._interval
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
