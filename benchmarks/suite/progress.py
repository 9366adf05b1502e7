"""A plain progress bar on stderr: no dependency, one line redrawn in place.

On a terminal the line is redrawn with ``\\r``; when stderr is a file or a
pipe (CI logs), each step is printed on its own line instead, so logs stay
readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``total`` steps; :meth:`step` advances by one and names what runs next."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def render(self, label: str) -> str:
        filled = int(self.width * self.done / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        return f"[{bar}] {self.done}/{self.total} {elapsed:5.0f}s {label}"

    def show(self, label: str) -> None:
        """Show the bar with ``label`` (what is running now) without advancing."""
        line = self.render(label)
        if self.tty:
            self.stream.write("\r" + line[:120].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """Print ``line`` above the bar (the bar is redrawn by the next update)."""
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(line + "\n")
        self.stream.flush()

    def step(self, label: str = "") -> None:
        self.done = min(self.done + 1, self.total)
        self.show(label)

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
