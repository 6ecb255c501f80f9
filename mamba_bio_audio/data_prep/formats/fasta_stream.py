"""Streaming FASTA tokenisation: plain, gzip or BGZF input, bounded memory, errors with file, line and column.

The file is read in chunks of ``READ_SIZE`` bytes, decompressed in a background thread (zlib and ISA-L release the
GIL); one ``bytes.translate`` per chunk drops whitespace (line breaks, ``\\r`` of CRLF files, blanks) and maps
bytes to ids with the :class:`~mamba_bio_audio.tokenizers.NucleotideTokenizer`'s table and policies. No Python
code runs per character.
Byte offsets are tracked exactly; line and column numbers are computed only when an error is reported.
"""
from __future__ import annotations

import queue
import threading
import zlib
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Protocol

import numpy as np

from mamba_bio_audio.tokenizers import NucleotideTokenizer

try:  # ISA-L inflates about three times faster than zlib; optional
    from isal.igzip import GzipFile
    from isal.isal_zlib import error as _IsalError
    _DECOMPRESS_ERRORS: tuple = (OSError, EOFError, zlib.error, _IsalError)
except ImportError:
    from gzip import GzipFile
    _DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError

READ_SIZE = 1 << 23  # bytes per read of the file (uncompressed bytes for gzip)
WHITESPACE = b" \t\r\n\v\f"
_GZIP_MAGIC = b"\x1f\x8b"
_WHITESPACE_CODES = np.frombuffer(WHITESPACE, np.uint8)
_REJECTED = NucleotideTokenizer.rejected_byte_id  # 255, not a token id: marks bytes the tokenizer's policies reject


class TokenSink(Protocol):
    """Receives the records of a FASTA stream, in order."""

    def begin(self, name: str, description: str, header_offset: int) -> None: ...

    def write(self, tokens: np.ndarray) -> None:
        """tokens: 1-D uint8 token ids of the current record (a piece of it)."""

    def end(self) -> None: ...


def check_readable(path: str | Path, what: str = "FASTA file") -> Path:
    """``path`` as a Path if it is a readable regular file; FileNotFoundError or ValueError naming it otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a regular file")
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be read: {err.strerror}") from err
    return path


def compression(path: str | Path) -> str:
    """``"plain"``, ``"gzip"`` or ``"bgzf"`` (gzip members carrying the ``BC`` extra field of SAM/BAM spec §4.1)."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != _GZIP_MAGIC:
        return "plain"
    if len(head) >= 18 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def _open(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """(reader of uncompressed bytes, underlying raw file whose ``tell()`` measures progress)."""
    raw = open(path, "rb")
    if compression(path) == "plain":
        return raw, raw
    return GzipFile(fileobj=raw, mode="rb"), raw


def iter_chunks(path: Path, start: int = 0, end: int | None = None, read_size: int = READ_SIZE,
                on_raw_bytes: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """Uncompressed bytes ``[start, end)`` of ``path`` in chunks, read ahead by a background thread.

    ``start``/``end`` must be 0/None for compressed files. ``on_raw_bytes(n)`` is called (in the consumer's
    thread) with the number of file bytes (compressed ones for gzip) consumed since the previous call.
    """
    fh, raw = _open(path)
    if fh is raw:
        fh.seek(start)
    elif start or end is not None:
        fh.close()
        raise ValueError(f"{path}: byte ranges need an uncompressed file")
    remaining = None if end is None else end - start
    out: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        nonlocal remaining
        try:
            while not stop.is_set():
                size = read_size if remaining is None else min(read_size, remaining)
                data = fh.read(size) if size else b""
                if remaining is not None:
                    remaining -= len(data)
                item = (data, raw.tell())
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if not data:
                    return
        except _DECOMPRESS_ERRORS as err:
            out.put(ValueError(f"{path}: corrupt or truncated compressed data ({err})"))

    thread = threading.Thread(target=produce, name=f"read {path.name}", daemon=True)
    thread.start()
    last_raw = start
    try:
        while True:
            item = out.get()
            if isinstance(item, Exception):
                raise item
            data, raw_pos = item
            if on_raw_bytes is not None:
                on_raw_bytes(raw_pos - last_raw)
            last_raw = raw_pos
            if not data:
                return
            yield data
    finally:
        stop.set()
        thread.join()
        fh.close()
        raw.close()


def locate(path: Path, offset: int) -> tuple[int, int]:
    """1-based (line, column) of the uncompressed byte ``offset`` of ``path`` (a scan: for error messages)."""
    line, pos, last_newline = 1, 0, -1
    for chunk in iter_chunks(path):
        take = chunk[: max(0, offset - pos)]
        line += take.count(b"\n")
        nl = take.rfind(b"\n")
        if nl >= 0:
            last_newline = pos + nl
        pos += len(chunk)
        if pos >= offset:
            break
    return line, offset - last_newline


def where(path: Path, offset: int) -> str:
    line, column = locate(path, offset)
    return f"{path}, line {line}, column {column}"


def token_table(tokenizer: NucleotideTokenizer) -> bytes:
    """The tokenizer's byte -> id table for ``bytes.translate`` (:meth:`NucleotideTokenizer.byte_lookup`, the
    table ``encode`` applies, so its policies (case, IUPAC, unknown) apply unchanged); bytes it rejects map to
    ``_REJECTED``."""
    return tokenizer.byte_lookup().tobytes()


class FastaTokenizer:
    """Parse a FASTA byte stream and send each record's tokens to a :class:`TokenSink`.

    Records are ``>name description`` header lines followed by sequence lines; the name is the header's first
    word (as Biopython's ``record.id`` and pyfaidx's keys). Whitespace inside sequence lines is ignored.
    """

    def __init__(self, tokenizer: NucleotideTokenizer, path: Path, sink: TokenSink, base_offset: int = 0):
        self.tokenizer = tokenizer
        self._table = token_table(tokenizer)
        self.path = path
        self.sink = sink
        self.offset = base_offset  # uncompressed file offset of the next byte fed
        self._header: bytearray | None = None  # inside a header line: its bytes so far
        self._header_offset = 0
        self._in_record = False
        self._line_start = True
        self.records = 0

    def feed(self, buf: bytes) -> None:
        pos, n = 0, len(buf)
        while pos < n:
            if self._header is not None:
                nl = buf.find(b"\n", pos)
                self._header += buf[pos: n if nl < 0 else nl]
                if nl < 0:
                    break
                self._finish_header()
                pos = nl + 1
                continue
            h = self._next_header(buf, pos)
            stop = n if h < 0 else h
            if stop > pos:
                self._sequence(buf, pos, stop)
            if h < 0:
                break
            if self._in_record:
                self.sink.end()
                self._in_record = False
            self._header, self._header_offset, pos = bytearray(), self.offset + h, h + 1
        self._line_start = buf.endswith(b"\n") if n else self._line_start
        self.offset += n

    def _next_header(self, buf: bytes, pos: int) -> int:
        """Index of the next ``>`` that starts a line, or -1 (a one-byte search: memchr speed)."""
        h = buf.find(b">", pos)
        while h >= 0 and not (self._line_start if h == 0 else buf[h - 1] == 0x0A):
            h = buf.find(b">", h + 1)  # a '>' inside a line: the tokenizer will reject it
        return h

    def close(self) -> None:
        if self._header is not None:
            self._finish_header()
        if self._in_record:
            self.sink.end()
            self._in_record = False

    def _finish_header(self) -> None:
        raw = bytes(self._header).rstrip(b"\r")
        self._header = None
        try:
            title = raw.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"{where(self.path, self._header_offset)}: header line is not ASCII") from None
        words = title.split(None, 1)
        if not words:
            raise ValueError(f"{where(self.path, self._header_offset)}: header line has no sequence name")
        self.sink.begin(words[0], title, self._header_offset)
        self._in_record = True
        self.records += 1

    def _sequence(self, buf: bytes, start: int, stop: int) -> None:
        piece = buf[start:stop]
        tokens = np.frombuffer(piece.translate(self._table, WHITESPACE), np.uint8)  # one pass: ids, no whitespace
        if not tokens.size:
            return
        if not self._in_record:
            first = next(i for i, b in enumerate(piece) if b not in WHITESPACE)
            raise ValueError(f"{where(self.path, self.offset + start + first)}: not FASTA: "
                             f"sequence data before the first '>' header line")
        if tokens.max() == _REJECTED:
            self._raise_invalid(piece, self.offset + start)
        self.sink.write(tokens)

    def _raise_invalid(self, piece: bytes, piece_offset: int) -> None:
        """Report the first invalid character of ``piece`` with its line and column."""
        bad = first_rejected(self._table, piece)
        line_start = piece.rfind(b"\n", 0, bad) + 1
        line_end = piece.find(b"\n", bad)
        line = piece[line_start: len(piece) if line_end < 0 else line_end].translate(None, WHITESPACE)
        try:
            self.tokenizer.encode(line, dtype=np.uint8)
            reason = f"invalid character {chr(piece[bad])!r}"
        except ValueError as err:
            reason = str(err)
        raise ValueError(f"{where(self.path, piece_offset + bad)}: {reason}") from None


def first_rejected(table: bytes, data: bytes) -> int:
    """Index in ``data`` of the first byte ``table`` (:func:`token_table`) rejects, whitespace aside; -1 if none."""
    ids = np.frombuffer(data.translate(table), np.uint8)
    bad = np.flatnonzero((ids == _REJECTED) & ~np.isin(np.frombuffer(data, np.uint8), _WHITESPACE_CODES))
    return int(bad[0]) if bad.size else -1


def tokenize_fasta(path: Path, tokenizer: NucleotideTokenizer, sink: TokenSink, start: int = 0,
                   end: int | None = None, read_size: int = READ_SIZE,
                   on_raw_bytes: Callable[[int], None] | None = None) -> Iterator[None]:
    """Tokenise the FASTA records in bytes ``[start, end)`` of ``path`` (``start`` at a header, or 0) into ``sink``.

    A generator that yields after each chunk, so the caller can hand over finished output while parsing goes
    on; exhaust it to parse everything. An input without records (empty, or no header) raises ValueError.
    """
    parser = FastaTokenizer(tokenizer, path, sink, base_offset=start)
    for chunk in iter_chunks(path, start, end, read_size, on_raw_bytes):
        parser.feed(chunk)
        yield
    parser.close()
    if start == 0 and parser.records == 0:
        raise ValueError(f"{path}: no FASTA records (empty file, or no '>' header line)")
