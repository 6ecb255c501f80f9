"""Prepared datasets: the contract between data preparation and training pipelines.

A prepared dataset is a folder::

    manifest.json          kind, format_version, tokenizer, sources (path, sha256, size), parameters,
                           per-split record and token counts
    <split>.tokens.u8      all tokens of the split, concatenated, uint8 (read with numpy.memmap)
    <split>.records.npy    int64 (n_records, 2 | 3): offset, length[, label] per record

It is written under a temporary name beside the destination and renamed into place at the end, with the
manifest written last: a folder without ``manifest.json`` is not a dataset, and a failed or killed preparation
never leaves a half-written one (nor damages an existing one). An existing folder is replaced only when it is a
prepared dataset (:data:`PREPARED_DATASET`) holding none of the inputs, under the folder's lock: anything else
is refused (:class:`~mamba_bio_audio.folder_kinds.FolderRefused`), by :func:`check_dataset_folder` before any
work.

:class:`PreparedDataset` checks every split against the manifest when it opens a folder, and reads one version
of it: the files of the manifest it read, even while another process prepares the folder again.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
from pathlib import Path

import numpy as np

from mamba_bio_audio.atomic import atomic_dir
from mamba_bio_audio.folder_kinds import check_folder, layout_kind

FORMAT_VERSION = 1
DATASET_KINDS = ("dna", "species", "audio")
MANIFEST = "manifest.json"
TOKENS, RECORDS = ".tokens.u8", ".records.npy"  # the files of every split, after its name


def _is_manifest(path: Path) -> bool:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("kind") in DATASET_KINDS and "format_version" in manifest


# What a preparation may replace: a folder with a dataset manifest holding only dataset files (token files,
# records, N-index and interval sidecars, sequence tables), never a folder with other files in it.
PREPARED_DATASET = layout_kind("a prepared dataset", files=(MANIFEST, "*.u8", "*.npy", "*.tsv"), marker=MANIFEST,
                               marker_check=_is_manifest)


def check_dataset_folder(out_dir: str | Path, inputs=()) -> None:
    """Raise :class:`~mamba_bio_audio.folder_kinds.FolderRefused` unless ``out_dir`` is absent, empty or a
    prepared dataset, holding none of ``inputs``: called before any work, so a refusal costs nothing."""
    check_folder(Path(out_dir), PREPARED_DATASET, inputs)


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
        return self._record(tokens.size, label)

    def add_file(self, path: str | Path, label: int | None = None) -> int:
        """Append one record whose tokens are the raw uint8 bytes of file ``path``, copied in blocks (a record
        of any length in constant memory); returns its index."""
        if self.labelled != (label is not None):
            raise ValueError(f"split {self.name!r}: every record needs a label, or none does")
        with open(path, "rb") as src:
            shutil.copyfileobj(src, self._fh, 1 << 20)
            size = src.tell()
        return self._record(size, label)

    def _record(self, size: int, label: int | None) -> int:
        record = (self.n_tokens, size) if label is None else (self.n_tokens, size, int(label))
        self._records.append(record)
        self.n_tokens += size
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
        inputs = [s["path"] for s in self._header["sources"] if isinstance(s, dict) and "path" in s]
        self._ctx = atomic_dir(self.out_dir, replaces=PREPARED_DATASET, inputs=inputs)
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


class DatasetChangedError(ValueError):
    """The dataset folder was re-prepared (or removed) after this reader opened it."""


def _changed(folder: Path, why: str) -> DatasetChangedError:
    return DatasetChangedError(f"{folder} was prepared again (or removed) after this run opened it ({why}); the "
                               f"version that was opened can no longer be read here: restart the run")


class PreparedSplit:
    """One split of a prepared dataset, bound to the version of the folder that was opened.

    Its records (``records``: int64 (n, 2 | 3), offset, length[, label]) are loaded, and its token file and side
    files (``<split>.*``: N index, intervals, tables) are held open, from the moment :class:`PreparedDataset`
    opened the folder; a folder prepared again meanwhile (swapped atomically) does not change what this split
    reads: never the new tokens with the old records. Forked processes (DataLoader workers) inherit the open
    files. A pickled split (``spawn`` workers) opens them again by name and raises :class:`DatasetChangedError`
    when the token file is no longer the one that was opened.
    """

    def __init__(self, folder: Path, name: str, info: dict, records: np.ndarray, files: dict):
        self.folder = folder
        self.name = name
        self.info = info
        self.records = records
        self._files = files  # suffix (".tokens.u8", ".ncount.npy", ...) -> unbuffered binary file, kept open
        self._identity = _identity(os.fstat(files[TOKENS].fileno()))
        self._tokens = None

    @property
    def tokens_path(self) -> Path:
        return self.folder / f"{self.name}{TOKENS}"

    @property
    def tokens(self) -> np.ndarray:
        """All tokens of the split, uint8 (n_tokens,), read-only, mapped from the open file."""
        if self._tokens is None:
            size = self._identity[2]
            fd = self._files[TOKENS].fileno()
            self._tokens = (np.frombuffer(mmap.mmap(fd, size, access=mmap.ACCESS_READ), np.uint8) if size
                            else np.zeros(0, np.uint8))
        return self._tokens

    def read(self, offset: int, length: int) -> np.ndarray:
        """Tokens ``[offset, offset + length)``, a uint8 copy read from the open file (``preadv`` straight into
        the array: no shared file position, so forked processes may read at once, and one copy per window; unlike
        a long-lived memmap, resident memory does not grow as training walks the genome)."""
        out = np.empty(length, np.uint8)
        fd = self._files[TOKENS].fileno()
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [out], offset) if length else 0
        else:  # platforms without preadv: a bytes object, then copied
            data = os.pread(fd, length, offset)
            got = len(data)
            out[:got] = np.frombuffer(data, np.uint8)
        if got != length:
            raise ValueError(f"{self.tokens_path}: short read ({got} of {length} bytes at {offset}); the "
                             f"dataset is damaged")
        return out

    def side_file(self, suffix: str) -> bytes | None:
        """The bytes of ``<split><suffix>`` (e.g. ``.ncount.npy``) of the opened version; None when it has none."""
        fh = self._files.get(suffix)
        if fh is None or suffix == TOKENS:
            return None
        return os.pread(fh.fileno(), os.fstat(fh.fileno()).st_size, 0)

    def check_unchanged(self) -> None:
        """Raise :class:`DatasetChangedError` unless the folder still holds the token file this split opened."""
        try:
            now = _identity(os.stat(self.tokens_path))
        except FileNotFoundError:
            raise _changed(self.folder, f"{self.tokens_path.name} is gone") from None
        if now != self._identity:
            raise _changed(self.folder, f"{self.tokens_path.name} is another file now")

    def __getstate__(self):
        return {**self.__dict__, "_files": list(self._files), "_tokens": None}

    def __setstate__(self, state):
        suffixes = state.pop("_files")
        self.__dict__.update(state)
        self._files = {}
        try:
            # the token file last: side files opened before it come from the version it proves unchanged
            for suffix in sorted(suffixes, key=lambda s: s == TOKENS):
                try:
                    self._files[suffix] = open(self.folder / f"{self.name}{suffix}", "rb", buffering=0)
                except FileNotFoundError:
                    raise _changed(self.folder, f"{self.name}{suffix} is gone") from None
            if _identity(os.fstat(self._files[TOKENS].fileno())) != self._identity:
                raise _changed(self.folder, f"a process started with 'spawn' found another "
                                            f"{self.tokens_path.name}; forked DataLoader workers keep reading the "
                                            f"opened version")
        except BaseException:
            for fh in self._files.values():
                fh.close()
            raise

    def __len__(self) -> int:
        return int(self.records.shape[0])

    def record(self, index: int) -> np.ndarray:
        offset, length = int(self.records[index, 0]), int(self.records[index, 1])
        return self.tokens[offset : offset + length]

    def label(self, index: int) -> int:
        if self.records.shape[1] < 3:
            raise ValueError(f"split {self.name!r} of {self.folder} has no labels")
        return int(self.records[index, 2])


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What tells one file from its replacement: device, inode, size, modification time."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class _Replaced(Exception):
    """The folder was swapped while it was being opened: open it again."""


class PreparedDataset:
    """Read a prepared dataset folder: ``PreparedDataset(path).split("train").record(0)``.

    Opening it checks the manifest and every split against it (identifier names; token file size = token
    count; records: int64 (n, 2 | 3), n = record count, inside the tokens, the last ending at the token count)
    and opens every split's files, all from one version of the folder (see :class:`PreparedSplit`).
    """

    _OPEN_TRIES = 5

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / MANIFEST).is_file():
            raise FileNotFoundError(f"{self.path} is not a prepared dataset: {MANIFEST} is missing")
        for _ in range(self._OPEN_TRIES):
            try:
                self.manifest, self._splits = self._open()
                break
            except _Replaced:
                continue
        else:
            raise _changed(self.path, f"it was replaced {self._OPEN_TRIES} times while being opened")
        self.kind = self.manifest["kind"]

    def _open(self) -> tuple[dict, dict[str, PreparedSplit]]:
        """(manifest, splits) read through one directory descriptor, so every file comes from the folder that
        was there when it was opened; raises _Replaced when that folder is swapped out meanwhile."""
        try:
            dir_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise _Replaced() from None

        def opener(name: str, flags: int) -> int:
            return os.open(name, flags, dir_fd=dir_fd)

        def replaced() -> bool:
            try:
                return _identity(os.stat(self.path))[:2] != _identity(os.fstat(dir_fd))[:2]
            except FileNotFoundError:
                return True

        opened = []
        try:
            manifest_path = self.path / MANIFEST
            try:
                with open(MANIFEST, "rb", opener=opener) as fh:
                    manifest = _parse_manifest(manifest_path, fh.read())
                entries = os.listdir(dir_fd)
                splits = {}
                for name, counts in manifest["splits"].items():
                    files = {}
                    for suffix in [TOKENS] + [e[len(name):] for e in entries if e.startswith(f"{name}.")
                                              and e not in (f"{name}{TOKENS}", f"{name}{RECORDS}")]:
                        files[suffix] = open(f"{name}{suffix}", "rb", buffering=0, opener=opener)
                        opened.append(files[suffix])
                    with open(f"{name}{RECORDS}", "rb", opener=opener) as fh:
                        records = _load_records(self.path / f"{name}{RECORDS}", fh)
                    _check_split(self.path, name, counts, records, os.fstat(files[TOKENS].fileno()).st_size)
                    splits[name] = PreparedSplit(self.path, name, counts, records, files)
            except FileNotFoundError as err:
                if replaced():
                    raise _Replaced() from None
                if err.filename == MANIFEST:
                    raise FileNotFoundError(f"{self.path} is not a prepared dataset: {MANIFEST} is missing") from None
                raise FileNotFoundError(f"{self.path}: split {Path(err.filename).name.split('.')[0]!r} is missing "
                                        f"{err.filename}") from None
        except BaseException:
            for fh in opened:
                fh.close()
            raise
        finally:
            os.close(dir_fd)
        return manifest, splits

    @property
    def split_names(self) -> list[str]:
        return list(self._splits)

    def split(self, name: str) -> PreparedSplit:
        if name not in self._splits:
            raise KeyError(f"{self.path} has no split {name!r}; it has {self.split_names}")
        return self._splits[name]

    def token_ids(self) -> int | None:
        """How many token ids (0 .. n-1) the dataset's tokens may take, from the manifest's tokenizer (None
        when the manifest does not say): 12 for nucleotides, 256 for 8-bit mu-law."""
        tokenizer = self.manifest.get("tokenizer") or {}
        vocab = tokenizer.get("vocab")
        if isinstance(vocab, dict) and vocab and all(isinstance(v, int) for v in vocab.values()):
            return max(vocab.values()) + 1
        size = tokenizer.get("vocab_size")
        return size if isinstance(size, int) else None

    def check_fits(self, kinds: tuple[str, ...] | None, reader: str, vocab_size: int | None = None) -> None:
        """Raise ValueError naming the dataset, its kind and tokenizer when its kind is not one of ``kinds``
        (what ``reader`` reads; None: any) or its token ids reach past a model's ``vocab_size``."""
        tokenizer = (self.manifest.get("tokenizer") or {}).get("type", "unknown")
        ids = self.token_ids()
        what = f"dataset {self.path} (kind {self.kind}, tokenizer {tokenizer}" + (f", {ids} token ids)" if ids else ")")
        model = f"; the model embeds {vocab_size} token ids (net.config.vocab_size)" if vocab_size else ""
        if kinds is not None and self.kind not in kinds:
            raise ValueError(f"{what} is not for {reader}, which reads {' or '.join(kinds)} datasets{model}: point "
                             f"data.path at a {kinds[0]} dataset or choose an experiment for {self.kind} data")
        if vocab_size is not None and ids is not None and ids > vocab_size:
            raise ValueError(f"{what} does not fit the model{model}: use a model made for this data")


def _parse_manifest(path: Path, text: bytes) -> dict:
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: not a dataset manifest (a JSON object)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {version!r} is not supported (expected {FORMAT_VERSION})")
    if manifest.get("kind") not in DATASET_KINDS:
        raise ValueError(f"{path}: kind {manifest.get('kind')!r} is not one of {DATASET_KINDS}")
    splits = manifest.setdefault("splits", {})
    if not isinstance(splits, dict):
        raise ValueError(f"{path}: 'splits' must map split names to their counts")
    for name, counts in splits.items():
        if not name.isidentifier():  # names become file names: no "../x", no "/"
            raise ValueError(f"{path}: split name {name!r} is not an identifier (such as train, valid, test)")
        if not (isinstance(counts, dict) and all(isinstance(counts.get(k), int) and counts[k] >= 0
                                                 for k in ("records", "tokens"))):
            raise ValueError(f"{path}: split {name!r} needs whole 'records' and 'tokens' counts; got {counts!r}")
    return manifest


def _load_records(path: Path, fh) -> np.ndarray:
    try:
        records = np.load(fh, allow_pickle=False)
    except (ValueError, EOFError, OSError) as err:
        raise ValueError(f"{path}: not a readable records file ({err}); the dataset is damaged") from None
    if records.dtype != np.int64 or records.ndim != 2 or records.shape[1] not in (2, 3):
        raise ValueError(f"{path}: records must be int64 (n, 2 | 3); got {records.dtype} {records.shape}")
    return records


def _check_split(folder: Path, name: str, counts: dict, records: np.ndarray, size: int) -> None:
    """Raise ValueError when a split's files disagree with the manifest's ``counts`` (truncated or damaged)."""
    tokens_path, records_path = folder / f"{name}.tokens.u8", folder / f"{name}.records.npy"
    fix = "prepare the dataset again"
    if size != counts["tokens"]:
        raise ValueError(f"{tokens_path}: {size:,} bytes, but {MANIFEST} gives split {name!r} {counts['tokens']:,} "
                         f"tokens (one byte each): the file is truncated or damaged; {fix}")
    if records.shape[0] != counts["records"]:
        raise ValueError(f"{records_path}: {records.shape[0]:,} records, but {MANIFEST} gives split {name!r} "
                         f"{counts['records']:,}: the file is damaged; {fix}")
    if records.shape[0]:
        offsets, lengths = records[:, 0], records[:, 1]
        ends = offsets + lengths
        if offsets.min() < 0 or lengths.min() < 0 or ends.max() > size or int(ends[-1]) != size:
            raise ValueError(f"{records_path}: records must lie inside the {size:,} tokens of {tokens_path.name}, "
                             f"the last ending at its end (it ends at {int(ends[-1]):,}): the dataset is damaged; "
                             f"{fix}")
