"""A simple progress bar on stderr: `[#####.....] 50% label`, redrawn in place.

    bar = Progress(total_units=120.0)     # e.g. the planned seconds of the run
    bar.update(done=30.0, label="postier step 2 @ 20 msg/s")
    bar.note("antivirus skipped: ...")   # a line of its own above the bar
    bar.close()

When stderr is not a terminal the bar prints one line per label change
instead of redrawing (logs stay readable).  `enabled=False` silences it.
"""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total_units: float = 1.0, *, width: int = 30, enabled: bool = True,
                 stream=None):
        self.total = max(1e-9, float(total_units))
        self.width = width
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0.0
        self.label = ""
        self._last = 0.0
        self._drawn = False
        self.t0 = time.monotonic()

    def render(self) -> str:
        frac = min(1.0, max(0.0, self.done / self.total))
        n = int(round(frac * self.width))
        el = time.monotonic() - self.t0
        return (f"[{'#' * n}{'.' * (self.width - n)}] {100 * frac:3.0f}% "
                f"{int(el) // 60:d}:{int(el) % 60:02d} {self.label}")

    def update(self, done: float | None = None, label: str | None = None, *,
               force: bool = False) -> None:
        if not self.enabled:
            return
        changed = label is not None and label != self.label
        if done is not None:
            self.done = done
        if label is not None:
            self.label = label
        now = time.monotonic()
        if self.tty:
            if force or changed or now - self._last >= 0.2:
                self.stream.write("\r\x1b[K" + self.render())
                self.stream.flush()
                self._drawn = True
                self._last = now
        elif changed or force:
            self.stream.write(self.render() + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty and self._drawn:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        if self.tty and self._drawn:
            self.stream.write(self.render())
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\r\x1b[K" + self.render() + "\n")
            self.stream.flush()
        self._drawn = False
