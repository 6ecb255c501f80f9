"""Rich progress bars of the data commands: bytes of input consumed, and files processed per phase.

The file bars have no background refresh thread: commands that fork worker processes (``prepare-audio``,
``examples audio``) must not fork while another thread may hold a lock.
"""
from __future__ import annotations

import contextlib

from rich.progress import (
    BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    TransferSpeedColumn,
)


@contextlib.contextmanager
def byte_progress(description: str, quiet: bool = False):
    """Yield a ``progress(advance, total)`` callback drawing a rich bar of input bytes with speed (None when
    quiet)."""
    if quiet:
        yield None
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
