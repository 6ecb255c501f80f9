"""Two writers of one dataset folder: the second fails at once with "in use" (an advisory lock beside the folder),
the dataset already there survives a writer killed half-way, and the next writer clears what the killed one left.

A real preparation is made slow deterministically: its progress callback (called while the new dataset is being
written) announces itself and sleeps, and the test then runs the command line against it.
"""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mamba_bio_audio.atomic import folder_lock
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.cli import main

HOLDER = """
import sys, time
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna

def progress(done, total):
    print("writing", flush=True)
    time.sleep(120)

prepare_dna([sys.argv[1]], sys.argv[2], held_out={"valid": ["chr2"]}, workers=1, force=True, progress=progress)
"""


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def genome(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "g.fa"
    path.write_text("".join(f">chr{i}\n{''.join(rng.choice(list('ACGT'), 4000))}\n" for i in (1, 2)))
    return path


def test_a_second_writer_is_refused_and_a_killed_one_leaves_the_dataset(tmp_path, genome):
    out = tmp_path / "ds"
    prepare_dna([genome], out)
    before = snapshot(out)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(genome), str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "writing"  # inside the writer: temporaries exist, lock held
        hidden = sorted(p.name.rsplit(".", 1)[-1] for p in tmp_path.iterdir() if p.name.startswith(".ds."))
        assert hidden == ["lock", "parts", "tmp"]
        second = cli("prepare-dna", genome, "--out", out, "--force", "--quiet")
        assert second.returncode == 2 and "in use" in second.stderr and str(out) in second.stderr, second.stderr
        assert snapshot(out) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert snapshot(out) == before  # the killed writer never touched the dataset
    assert main(["prepare-dna", str(genome), "--out", str(out), "--force", "--valid", "chr2", "--quiet"]) == 0
    assert PreparedDataset(out).split_names == ["train", "valid"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "g.fa"]  # temporaries and lock file gone


def test_a_lock_held_elsewhere_refuses_at_once(tmp_path, genome, capsys):
    """A lock taken through another open file (flock locks belong to the open file, so this test's own
    descriptor stands for another process) stops the command before anything is made."""
    out = tmp_path / "ds"
    fd = os.open(tmp_path / ".ds.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["prepare-dna", str(genome), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert "in use" in err and len(err.strip().splitlines()) == 1 and not out.exists()
    finally:
        os.close(fd)
    prepare_dna([genome], out)  # the lock file of the other process is harmless once it is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "g.fa"]


def test_stale_temporaries_are_cleared_and_a_cut_swap_undone(tmp_path, genome):
    out = tmp_path / "ds"
    prepare_dna([genome], out)
    before = snapshot(out)
    # a writer killed between the two renames of the swap: the previous dataset sits in its .old folder
    old = tmp_path / ".ds.0123456789ab.old"
    old.mkdir()
    out.rename(old / "ds")
    for name in (".ds.0123456789ab.tmp", ".ds.abcdef012345.parts"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part.u8").write_bytes(b"\x07" * 10)
    kept = [tmp_path / ".ds.mine.tmp", tmp_path / ".other.0123456789ab.tmp"]  # not ours to remove
    for path in kept:
        path.mkdir()
    with folder_lock(out):
        assert snapshot(out) == before  # put back before anything else happens
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ds.mine.tmp", ".other.0123456789ab.tmp", "ds", "g.fa"]
