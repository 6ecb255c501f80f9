"""Prepared datasets: the contract between data preparation and training pipelines.

A prepared dataset is a folder::

    manifest.json          kind, format_version, tokenizer, sources (path, sha256, size), parameters,
                           per-split record and token counts
    <split>.tokens.u8      all tokens of the split, concatenated, uint8 (read with numpy.memmap)
    <split>.records.npy    int64 (n_records, 2 | 3): offset, length[, label] per record

It is written under a temporary name beside the destination and renamed into place at the end, with the
manifest written last: a folder without ``manifest.json`` is not a dataset, and a failed or killed preparation
never leaves a half-written one (nor damages an existing one).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from mamba_bio_audio.atomic import atomic_dir

FORMAT_VERSION = 1
DATASET_KINDS = ("dna", "species", "audio")
MANIFEST = "manifest.json"


def file_sha256(path: str | Path, block_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block_size):
            digest.update(chunk)
    return digest.hexdigest()


def source_entry(path: str | Path) -> dict:
    """Manifest entry of one raw input: resolved path, sha256 and size in bytes."""
    path = Path(path)
    return {"path": str(path.resolve()), "sha256": file_sha256(path), "size": path.stat().st_size}


def is_up_to_date(out_dir: str | Path, kind: str, sources: list[dict], parameters: dict) -> bool:
    """True when ``out_dir`` already holds a dataset of ``kind`` prepared from the same sources and parameters."""
    manifest_path = Path(out_dir) / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return False
    return (
        manifest.get("format_version") == FORMAT_VERSION
        and manifest.get("kind") == kind
        and [s["sha256"] for s in manifest.get("sources", [])] == [s["sha256"] for s in sources]
        and manifest.get("parameters") == json.loads(json.dumps(parameters))
    )


class _SplitWriter:
    def __init__(self, folder: Path, name: str, labelled: bool):
        self.name = name
        self.labelled = labelled
        self._fh = open(folder / f"{name}.tokens.u8", "wb")
        self._records: list[tuple[int, ...]] = []
        self.n_tokens = 0

    def add(self, tokens: np.ndarray, label: int | None = None) -> int:
        """Append one record (1-D uint8 tokens); returns its index."""
        tokens = np.ascontiguousarray(tokens)
        if tokens.dtype != np.uint8 or tokens.ndim != 1:
            raise ValueError(f"split {self.name!r}: records must be 1-D uint8 arrays; got {tokens.dtype} {tokens.shape}")
        if self.labelled != (label is not None):
            raise ValueError(f"split {self.name!r}: every record needs a label, or none does")
        self._fh.write(memoryview(tokens))
        record = (self.n_tokens, tokens.size) if label is None else (self.n_tokens, tokens.size, int(label))
        self._records.append(record)
        self.n_tokens += tokens.size
        return len(self._records) - 1

    def close(self, folder: Path) -> dict:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        width = 3 if self.labelled else 2
        records = np.asarray(self._records, dtype=np.int64).reshape(-1, width)
        np.save(folder / f"{self.name}.records.npy", records)
        return {"records": int(records.shape[0]), "tokens": int(self.n_tokens)}


class PreparedDatasetWriter:
    """Write a prepared dataset atomically.

    >>> with PreparedDatasetWriter(out, "dna", tokenizer={...}, sources=[...], parameters={...}) as w:
    ...     w.split("train").add(tokens_u8)
    """

    def __init__(self, out_dir: str | Path, kind: str, tokenizer: dict, sources: list[dict], parameters: dict,
                 labelled: bool = False, extra: dict | None = None):
        if kind not in DATASET_KINDS:
            raise ValueError(f"kind must be one of {DATASET_KINDS}; got {kind!r}")
        self.out_dir = Path(out_dir)
        self.kind = kind
        self.labelled = labelled
        self._header = {"tokenizer": tokenizer, "sources": sources, "parameters": parameters, **(extra or {})}
        self._splits: dict[str, _SplitWriter] = {}
        self._ctx = None
        self.folder: Path | None = None

    def __enter__(self) -> "PreparedDatasetWriter":
        self._ctx = atomic_dir(self.out_dir)
        self.folder = self._ctx.__enter__()
        return self

    def split(self, name: str) -> _SplitWriter:
        if not name.isidentifier():
            raise ValueError(f"split names must be identifiers; got {name!r}")
        if name not in self._splits:
            self._splits[name] = _SplitWriter(self.folder, name, self.labelled)
        return self._splits[name]

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            for w in self._splits.values():
                w._fh.close()
            return self._ctx.__exit__(exc_type, exc, tb)
        try:
            counts = {name: w.close(self.folder) for name, w in self._splits.items()}
            manifest = {"kind": self.kind, "format_version": FORMAT_VERSION, **self._header, "splits": counts}
            (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        except BaseException as err:  # e.g. a full disk while finishing: discard the temporary folder
            for w in self._splits.values():
                w._fh.close()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self._ctx.__exit__(None, None, None)


class PreparedSplit:
    """One split of a prepared dataset. ``tokens`` is a read-only uint8 memmap opened lazily per process."""

    def __init__(self, folder: Path, name: str, info: dict):
        self.folder = folder
        self.name = name
        self.info = info
        self.records = np.load(folder / f"{name}.records.npy")
        self._tokens = None
        self._pid = None

    @property
    def tokens(self) -> np.ndarray:
        if self._tokens is None or self._pid != os.getpid():  # one mapping per DataLoader worker
            path = self.folder / f"{self.name}.tokens.u8"
            self._tokens = np.memmap(path, dtype=np.uint8, mode="r") if path.stat().st_size else np.zeros(0, np.uint8)
            self._pid = os.getpid()
        return self._tokens

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def record(self, index: int) -> np.ndarray:
        offset, length = int(self.records[index, 0]), int(self.records[index, 1])
        return self.tokens[offset : offset + length]

    def label(self, index: int) -> int:
        if self.records.shape[1] < 3:
            raise ValueError(f"split {self.name!r} of {self.folder} has no labels")
        return int(self.records[index, 2])


class PreparedDataset:
    """Read a prepared dataset folder: ``PreparedDataset(path).split("train").record(0)``."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{self.path} is not a prepared dataset: {MANIFEST} is missing")
        try:
            self.manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest_path}: invalid JSON ({err})") from err
        version = self.manifest.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"{manifest_path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
        for name, counts in self.manifest.get("splits", {}).items():
            for suffix in (".tokens.u8", ".records.npy"):
                if not (self.path / f"{name}{suffix}").is_file():
                    raise FileNotFoundError(f"{self.path}: split {name!r} is missing {name}{suffix}")
        self.kind = self.manifest["kind"]

    @property
    def split_names(self) -> list[str]:
        return list(self.manifest.get("splits", {}))

    def split(self, name: str) -> PreparedSplit:
        if name not in self.manifest.get("splits", {}):
            raise KeyError(f"{self.path} has no split {name!r}; it has {self.split_names}")
        return PreparedSplit(self.path, name, self.manifest["splits"][name])
