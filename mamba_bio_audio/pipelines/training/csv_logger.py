"""Lightning's CSVLogger, except that a run resumed in its own folder appends to the ``metrics.csv`` of its
earlier parts instead of deleting it.

Lightning's writer removes an existing ``metrics.csv`` when it starts; this one keeps it, starts from its
header (so a rewrite for a new column keeps the earlier columns) and rewrites it only atomically. A resumed
fit logs from the step S of its checkpoint on, and an earlier part may have logged steps past S before it
stopped (a crash after the last checkpoint): when the first rows of the new run start at S > 0, the earlier
rows at steps >= S are dropped, so every step's values come from the part the final weights descend from.
Rows that start at step 0 (an ``evaluate`` run's test metrics, or a fit started over) are appended and
nothing is dropped.
"""
from __future__ import annotations

import csv
import os

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from mamba_bio_audio.atomic import atomic_path

__all__ = ["AppendingCSVLogger"]


def _step(row: dict) -> int | None:
    try:
        return int(row.get("step") or "")
    except ValueError:
        return None


class _AppendingWriter(ExperimentWriter):
    """ExperimentWriter that keeps and extends an existing ``metrics.csv`` (columns: ``step`` (int) and one
    float column per metric, empty where a row lacks it)."""

    def _check_log_dir_exists(self) -> None:  # Lightning's removes metrics.csv here
        self._earlier_rows = os.path.isfile(self.metrics_file_path)
        if self._earlier_rows:
            with open(self.metrics_file_path, newline="") as file:
                self.metrics_keys = list(csv.DictReader(file).fieldnames or [])

    def save(self) -> None:
        if self.metrics and self._earlier_rows:
            self._earlier_rows = False
            first = min(int(row["step"]) for row in self.metrics)
            if first > 0:  # a resumed fit: its steps from `first` on replace those of the earlier part
                self._rewrite(lambda step: step is not None and step < first)
        super().save()

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        self._rewrite(lambda step: True, fieldnames)

    def _rewrite(self, keep, fieldnames: list[str] | None = None) -> None:
        """Rewrite ``metrics.csv`` atomically with the rows whose step ``keep`` accepts, under ``fieldnames``
        (default: the file's own header)."""
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            rows = [row for row in reader if keep(_step(row))]
            fieldnames = fieldnames or list(reader.fieldnames or self.metrics_keys)
        with atomic_path(self.metrics_file_path) as tmp, open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=fieldnames, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


class AppendingCSVLogger(CSVLogger):
    """``lightning.pytorch.loggers.CSVLogger`` whose ``metrics.csv`` survives a resume in the same folder
    (same arguments; ``version: ""`` writes ``<save_dir>/<name>/metrics.csv``)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
