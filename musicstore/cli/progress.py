"""A dependency-free progress line on stderr for the CLI's long work; silent unless stderr is a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30
"""Characters of the bar itself (when the total is known)."""


class ProgressBar:
    """``bar(done)`` redraws ``label [####------]  40%  2/5`` (or ``label 1,234 items`` without a total).

    The call signature matches the ``progress=`` callbacks of reconcile, cleanup, disk_usage and backup.
    Nothing is written unless ``enabled`` (default: ``stream.isatty()``), so pipes, files and cron logs stay
    clean. Redraws at most every ``interval`` seconds; ``close()`` erases the line.
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        *,
        unit: str = "items",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval: float = 0.1,
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.stream = sys.stderr if stream is None else stream
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.interval = interval
        self.done = 0
        self._drawn = 0.0
        self._width = 0

    def __call__(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= self.interval or done == self.total):
            self._drawn = now
            self._write(self.render())

    def advance(self, n: int = 1) -> None:
        self(self.done + n)

    def render(self) -> str:
        if not self.total:
            return f"{self.label} {self.done:,} {self.unit}"
        fraction = min(max(self.done / self.total, 0.0), 1.0)
        filled = round(fraction * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{self.label} [{bar}] {fraction:4.0%}  {self.done:,}/{self.total:,} {self.unit}"

    def _write(self, text: str) -> None:
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def close(self) -> None:
        """Erase the line (the command's own output follows on a clean line)."""
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
