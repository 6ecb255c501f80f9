"""Streaming tokenisation equals an independent parse (Biopython SeqIO + the tokenizer) in every format."""
import gzip

import numpy as np
import pytest
from Bio import SeqIO

from mamba_bio_audio.data_prep.formats import fasta_parts, fasta_stream
from mamba_bio_audio.data_prep.formats.fasta import bundled_example
from mamba_bio_audio.data_prep.formats.fasta_parts import iter_parts
from mamba_bio_audio.data_prep.formats.fasta_stream import compression, tokenize_fasta
from mamba_bio_audio.tokenizers import NucleotideTokenizer

POLICY = NucleotideTokenizer().config()


class Collect:
    """A TokenSink keeping {name: tokens}."""

    def __init__(self):
        self.records, self._name, self._pieces = {}, None, []

    def begin(self, name, description, header_offset):
        self._name, self._pieces = name, []

    def write(self, tokens):
        self._pieces.append(tokens.copy())

    def end(self):
        self.records[self._name] = np.concatenate(self._pieces) if self._pieces else np.zeros(0, np.uint8)


def stream(path, tok, read_size=1 << 23):
    sink = Collect()
    for _ in tokenize_fasta(path, tok, sink, read_size=read_size):
        pass
    return sink.records


def biopython(path, tok):
    handle = gzip.open(path, "rt") if compression(path) != "plain" else open(path)
    with handle:
        return {r.id: tok.encode(str(r.seq), dtype=np.uint8) for r in SeqIO.parse(handle, "fasta")}


def assert_same(a, b):
    assert list(a) == list(b)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


CASES = {
    "multi-line": dict(width=60),
    "single-line": dict(width=10 ** 6),
    "crlf": dict(width=61, newline="\r\n"),
    "gzip": dict(width=70, compress="gzip"),
    "bgzf": dict(width=60, compress="bgzf"),
    "bgzf-crlf": dict(width=50, newline="\r\n", compress="bgzf"),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("read_size", [7, 1 << 23])
def test_matches_biopython(tmp_path, rng, tok, dna, case, read_size):
    records = [(f"seq{i} some description", dna.random_dna(rng, n, n_runs=2, lowercase=True))
               for i, n in enumerate([3000, 1, 61, 999])]
    records.append(("iupac", "ACGTRYSWKMBDHVNacgtrykmbdhvn" * 5))
    records.append(("empty", ""))
    path = dna.write_fasta(tmp_path / "x.fa", records, **CASES[case])
    assert_same(stream(path, tok, read_size), biopython(path, tok))


def test_blank_lines_and_spaces(tmp_path, tok):
    path = tmp_path / "x.fa"
    path.write_bytes(b">a\n\nAC GT\n\n\nNN\t\n>b x\nacgt\n\n")
    assert_same(stream(path, tok, read_size=3), biopython(path, tok))


@pytest.mark.parametrize("name", ["MT-human.fa.gz", "MT-orang.fa.gz"])
def test_bundled_examples(tok, name):
    path = bundled_example(name)
    assert_same(stream(path, tok), biopython(path, tok))


def test_compression_detected(tmp_path, dna):
    for kind in ("gzip", "bgzf", None):
        path = dna.write_fasta(tmp_path / f"{kind}.fa", [("a", "ACGT")], compress=kind)
        assert compression(path) == (kind or "plain")


def _parts(paths, tmp_path, workers):
    folder = tmp_path / f"parts{workers}"
    folder.mkdir()
    out = {}
    for part in iter_parts(paths, POLICY, folder, workers=workers, task_bytes=5000, part_bytes=3000):
        tokens = np.array(part.tokens())
        for seq in part.sequences:
            out[(seq.source, seq.name)] = tokens[seq.offset: seq.offset + seq.length]
        part.path.unlink()
    assert list(folder.iterdir()) == []
    return out


def test_parallel_tasks_equal_serial(tmp_path, rng, dna, monkeypatch):
    monkeypatch.setattr(fasta_parts, "SERIAL_BYTES", 0)
    records = [(f"s{i}", dna.random_dna(rng, int(n), n_runs=1)) for i, n in enumerate(rng.integers(1, 4000, 12))]
    plain = dna.write_fasta(tmp_path / "a.fa", records)
    packed = dna.write_fasta(tmp_path / "b.fa.gz", records[:5], compress="bgzf")
    tasks = fasta_parts.plan_tasks([plain, packed], 5000)
    text = plain.read_bytes()
    spans = [(t.start, t.end) for t in tasks if t.source == 0]  # the plain file: whole records, >= 5000 bytes a task
    assert spans[0][0] == 0 and spans[-1][1] == len(text) and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(text[start:start + 1] == b">" for start, _ in spans) and all(e - s >= 5000 for s, e in spans[:-1])
    assert [(t.source, t.start, t.end) for t in tasks if t.source == 1] == [(1, 0, None)]  # compressed: one task
    assert len(spans) >= 3  # several tasks for the workers to share
    serial = _parts([plain, packed], tmp_path, workers=1)
    assert list(serial) == [(0, n) for n, _ in records] + [(1, n) for n, _ in records[:5]]
    parallel = _parts([plain, packed], tmp_path, workers=2)
    assert list(parallel) == list(serial)
    for key in serial:
        np.testing.assert_array_equal(parallel[key], serial[key])


def test_stdlib_gzip_fallback(tmp_path, rng, tok, dna, monkeypatch):
    """Without the optional ISA-L package the standard gzip module decompresses, with the same result."""
    monkeypatch.setattr(fasta_stream, "GzipFile", gzip.GzipFile)
    records = [("a", dna.random_dna(rng, 5000, n_runs=1, lowercase=True)), ("b", "ACGT")]
    for kind in ("gzip", "bgzf"):
        path = dna.write_fasta(tmp_path / f"{kind}.fa.gz", records, compress=kind)
        assert_same(stream(path, tok, read_size=1000), biopython(path, tok))
