"""Rich progress bars of the data commands: bytes of input consumed, and files processed per phase. When
stdout is a file or a pipe, where a bar stays silent, the byte bar prints a line every ``LINE_EVERY_S`` seconds
instead.

The file bars have no background refresh thread: commands that fork worker processes (``prepare-audio``,
``examples audio``) must not fork while another thread may hold a lock.
"""
from __future__ import annotations

import contextlib
import sys
import time

from rich.progress import (
    BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    TransferSpeedColumn,
)


LINE_EVERY_S = 30.0


@contextlib.contextmanager
def byte_progress(description: str, quiet: bool = False):
    """Yield a ``progress(advance, total)`` callback drawing a rich bar of input bytes with speed (None when
    quiet; printing a line every ``LINE_EVERY_S`` seconds when stdout is not a terminal)."""
    if quiet:
        yield None
        return
    if not sys.stdout.isatty():
        yield _byte_lines(description)
        return
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeElapsedColumn(), TimeRemainingColumn())
    with bar:
        task = bar.add_task(description, total=None)

        def advance(n: int, total: int) -> None:
            bar.update(task, advance=n, total=total or None)

        yield advance


def file_progress(disable: bool = False) -> Progress:
    """``with file_progress() as bar: task = bar.add_task("decode", total=n)``, then
    ``bar.update(task, completed=i, refresh=True)``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        auto_refresh=False,
        disable=disable,
    )


def phase_callback(bar: Progress):
    """A ``progress(phase, done, total)`` callback for data_prep functions that adds one bar per phase."""
    tasks: dict[str, int] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(phase, total=total)
        bar.update(tasks[phase], completed=done, total=total, refresh=True)

    return update


def _byte_lines(description: str):
    """A ``progress(advance, total)`` callback that prints ``name: 120 of 480 MB (25 %), 40 MB/s`` at most
    every ``LINE_EVERY_S`` seconds."""
    started = last = time.perf_counter()
    done = 0

    def advance(n: int, total: int) -> None:
        nonlocal done, last
        done += n
        now = time.perf_counter()
        if now - last >= LINE_EVERY_S:
            last = now
            share = f" of {total / 1e6:.0f} MB ({100 * done / total:.0f} %)" if total else " MB"
            print(f"{description}: {done / 1e6:.0f}{share}, {done / 1e6 / (now - started):.0f} MB/s", flush=True)

    return advance
