"""A write the machine refuses (a full disk, a file-size limit) ends the command with one line naming the folder
and a non-zero exit status, and the dataset already in place stays byte for byte, with no temporary left beside it.

The fault is real: the child process runs under ``RLIMIT_FSIZE`` with SIGXFSZ ignored, so its writes past the
limit fail with ``OSError(EFBIG)`` as they fail with ENOSPC on a full disk.
"""
from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna


def _fasta(path: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text("".join(f">chr{i}\n{''.join(rng.choice(list('ACGT'), n))}\n" for i in (1, 2)))
    return path


def _limited_writes(limit_bytes: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_a_refused_write_keeps_the_old_dataset_and_says_so(tmp_path):
    out = tmp_path / "ds"
    prepare_dna([_fasta(tmp_path / "small.fa", 2_000, 0)], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    big = _fasta(tmp_path / "big.fa", 400_000, 1)  # 800 kB of tokens: past the 200 kB limit below
    done = subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "prepare-dna", str(big),
                           "--out", str(out)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited_writes(200_000))
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "File too large" in lines[0] and str(out) in lines[0], done.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.fa", "ds", "small.fa"]
