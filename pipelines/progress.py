"""Rich progress bars shared by long-running commands."""
from __future__ import annotations

from rich.progress import (
    BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
    TransferSpeedColumn,
)


def progress_bar() -> Progress:
    """A bar with a ``loss`` field: ``task = bar.add_task(desc, total=n, loss=float('nan'))``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


def transfer_bar() -> Progress:
    """A bar for input consumed in bytes, with speed: ``task = bar.add_task(desc, total=n_bytes)``."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
