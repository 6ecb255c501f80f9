"""Files a DNA or species dataset holds beside the common layout of :mod:`.prepared`.

Per split, next to ``<split>.tokens.u8`` and ``<split>.records.npy``:

``<split>.intervals.npy``
    int64 (n_intervals, 3): record index, start, end (0-based, half-open, relative to the record). The units
    window schemes cut from: BED intervals, or whole records.
``<split>.ncount.npy``
    int64 prefix counts of N tokens every :data:`~.nindex.BLOCK` tokens of the split (see :mod:`.nindex`).
``<split>.records.tsv``
    one line per record: ``name  start  end`` (its place in the source sequence) and, for species datasets,
    ``species``; a header line names the columns.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from mamba_bio_audio.data_prep.datasets.nindex import NIndex, NIndexBuilder
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDatasetWriter, PreparedSplit


class SplitSink:
    """Add records to one split of a :class:`PreparedDatasetWriter` and keep the sidecar files in step."""

    def __init__(self, writer: PreparedDatasetWriter, split: str, species: list[str] | None = None):
        self.writer, self.split, self.species = writer, split, species
        self._intervals: list[tuple[int, int, int]] = []
        self._rows: list[str] = []
        self._nindex = NIndexBuilder()

    def add(self, tokens: np.ndarray, name: str, start: int, end: int,
            intervals: list[tuple[int, int]] | None = None, label: int | None = None) -> int:
        """Append ``tokens`` (uint8, bases ``[start, end)`` of sequence ``name``) as a record; ``intervals`` in
        the sequence's coordinates (default: the whole record). Returns the record index."""
        index = self.writer.split(self.split).add(tokens, label)
        for a, b in intervals if intervals is not None else [(start, end)]:
            self._intervals.append((index, a - start, b - start))
        row = f"{name}\t{start}\t{end}"
        self._rows.append(row if label is None else f"{row}\t{self.species[label]}")
        self._nindex.add(tokens)
        return index

    def close(self) -> None:
        folder = self.writer.folder
        np.save(folder / f"{self.split}.intervals.npy", np.asarray(self._intervals, np.int64).reshape(-1, 3))
        np.save(folder / f"{self.split}.ncount.npy", self._nindex.finish())
        header = "name\tstart\tend" + ("" if self.species is None else "\tspecies")
        (folder / f"{self.split}.records.tsv").write_text("\n".join([header] + self._rows) + "\n")


class SplitSinks(dict):
    """split name -> :class:`SplitSink`, created on first use; :meth:`close` writes every sidecar."""

    def __init__(self, writer: PreparedDatasetWriter, species: list[str] | None = None):
        super().__init__()
        self.writer, self.species = writer, species

    def __missing__(self, split: str) -> SplitSink:
        self[split] = SplitSink(self.writer, split, self.species)
        return self[split]

    def close(self) -> None:
        for sink in self.values():
            sink.close()


def load_intervals(split: PreparedSplit) -> np.ndarray:
    """(n, 3) int64 intervals of ``split`` (of the version it opened); whole records when it has none."""
    data = split.side_file(".intervals.npy")
    if data is not None:
        return np.load(io.BytesIO(data), allow_pickle=False)
    lengths = split.records[:, 1]
    return np.stack([np.arange(len(lengths)), np.zeros_like(lengths), lengths], axis=1).astype(np.int64)


def load_nindex(split: PreparedSplit) -> NIndex:
    """The N index of ``split`` (computed with one pass over its tokens when the dataset has none). It holds a
    memmap: build one per process rather than pickling it."""
    data = split.side_file(".ncount.npy")
    return NIndex(open_tokens(split), None if data is None else np.load(io.BytesIO(data), allow_pickle=False))


def open_tokens(split: PreparedSplit) -> np.ndarray:
    """The split's tokens: a read-only uint8 mapping of the file the split holds open (the opened version)."""
    return split.tokens


def read_records_tsv(folder: Path, split: str) -> list[dict[str, str]]:
    """The rows of ``<split>.records.tsv`` as dicts keyed by its header."""
    lines = (Path(folder) / f"{split}.records.tsv").read_text().splitlines()
    keys = lines[0].split("\t")
    return [dict(zip(keys, line.split("\t"))) for line in lines[1:]]
