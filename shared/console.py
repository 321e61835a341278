"""Output of the operator commands: rich tables, progress and colour on a terminal, plain text elsewhere.

Renderers build plain text with `table()`; `show()` prints it, colouring problem words only when the
output is a terminal, so pipes, logs and tests get the same text without escape codes.
"""
from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.highlighter import RegexHighlighter
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table
from rich.text import Text
from rich.theme import Theme

WIDTH = 400  # tables are never wrapped: a long reason stays on its row


def table(rows: Sequence[Sequence[str]], headers: Sequence[str] | None = None, *, indent: int = 0) -> list[str]:
    """Rows as aligned columns two spaces apart (plain text, no trailing blanks)."""
    if not rows and not headers:
        return []
    grid = Table(box=None, show_header=headers is not None, pad_edge=False, padding=(0, 1, 0, 1),
                 header_style="")
    width = len(headers) if headers is not None else max(len(r) for r in rows)
    for index in range(width):
        grid.add_column(headers[index] if headers is not None else "", no_wrap=True, overflow="ignore")
    for row in rows:
        grid.add_row(*(Text(cell) for cell in row))  # cells are text, not markup: `[x]` stays
    buffer = io.StringIO()
    Console(file=buffer, width=WIDTH, color_system=None, force_terminal=False, highlight=False).print(grid)
    return [" " * indent + line.rstrip() for line in buffer.getvalue().splitlines()]


class _ProblemWords(RegexHighlighter):
    """Words the commands write in capitals when something is wrong, and the good verdicts."""

    base_style = "sofamon."
    highlights = [
        r"(?P<bad>\b(UNHEALTHY|STALE|MISSING|FAILING|FAILED|BROKEN|BLOCKED|PAUSED|STUCK|UNAVAILABLE)\b)",
        r"(?P<good>\b(healthy|alive|ok)\b)",
    ]


_THEME = Theme({"sofamon.bad": "bold red", "sofamon.good": "green"})


def console(out: TextIO | None = None) -> Console:
    """A console on `out` (stdout by default): colour on a terminal, plain text otherwise."""
    out = out if out is not None else sys.stdout
    return Console(file=out, theme=_THEME, highlighter=_ProblemWords(), width=WIDTH if not out.isatty() else None,
                   soft_wrap=True, emoji=False, markup=False)


def show(text: str, out: TextIO | None = None) -> None:
    console(out).print(text)


@contextmanager
def progress(label: str, total: float, out: TextIO | None = None) -> Iterator["ProgressBar"]:
    """A progress bar on stderr while the block runs; nothing at all when stderr is not a terminal."""
    out = out if out is not None else sys.stderr
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   TextColumn("{task.fields[count]:,} entries"), console=Console(file=out),
                   disable=not out.isatty(), transient=True)
    with bar:
        task = bar.add_task(label, total=max(total, 1), count=0)
        yield ProgressBar(bar, task)


class ProgressBar:
    def __init__(self, bar: Progress, task: object) -> None:
        self._bar = bar
        self._task = task
        self.count = 0

    def update(self, done: float) -> None:
        """`done` of the total is behind us; one more item counted."""
        self.count += 1
        self._bar.update(self._task, completed=done, count=self.count)  # type: ignore[arg-type]
