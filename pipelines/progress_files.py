"""Rich progress bars for file-processing commands (no loss field), refreshed by the caller.

No background refresh thread: commands that fork worker processes (``prepare-audio``, ``examples audio``)
must not fork while another thread may hold a lock.
"""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


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
