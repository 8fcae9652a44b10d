"""Text output for the CLI: tables, a progress bar, numbers."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def table(headers: list[str], rows: list[list[Any]], out: TextIO = sys.stdout) -> None:
    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(), file=out)
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
        return f"{value:.2e}"
    return str(value)


class Progress:
    """A one-line bar on a terminal; one line per change elsewhere (logs, pipes)."""

    def __init__(self, label: str, out: TextIO = sys.stderr, width: int = 30):
        self.label, self.out, self.width = label, out, width
        self.tty = out.isatty()
        self.last: tuple | None = None

    def update(self, job: dict) -> None:
        state = (job["status"], round(job.get("progress") or 0.0, 2), job.get("stage"))
        if state == self.last:
            return
        self.last = state
        status, progress, stage = state
        done = int(progress * self.width)
        bar = "#" * done + "-" * (self.width - done)
        line = f"{self.label} [{bar}] {progress * 100:3.0f}% {status}" + (
            f" ({stage})" if stage else ""
        )
        if self.tty:
            print(f"\r\033[K{line}", end="", file=self.out, flush=True)
        else:
            print(line, file=self.out, flush=True)

    def close(self) -> None:
        if self.tty and self.last is not None:
            print(file=self.out, flush=True)
