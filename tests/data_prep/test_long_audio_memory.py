"""Long recordings prepare in bounded memory: ``prepare-audio --workers 2`` under an address-space limit
(RLIMIT_AS, as ``ulimit -v``) that the whole-file path (decode all, resample all, encode all) cannot fit in.

The CI case (~11 s on 2 cores): two 25-minute 48 kHz stereo FLACs, one per worker, under "what the command's
imports take + 128 MiB"; whole in memory, one recording's 16 kHz float32 samples and their concatenation alone
take 183 MiB. The full case (a 3-hour file under 2 GiB) is this file run as a script (docs/audio_data.md)::

    python tests/data_prep/test_long_audio_memory.py --minutes 180 --limit-mib 2048
"""
from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset

RATE_IN, RATE_OUT = 48000, 16000
HEADROOM_MIB = 128
_IMPORTS = ("import mamba_bio_audio.pipelines.cli, mamba_bio_audio.pipelines.commands.prepare_audio\n"
            "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmPeak')))")
_WHOLE_FILE = ("import sys\n"
               "from mamba_bio_audio.data_prep.formats.audio_encode import encode_audio\n"
               "from mamba_bio_audio.data_prep.formats.audio_io import load_mono\n"
               "encode_audio(load_mono(sys.argv[1], 16000).samples)")


def write_long_flac(path: Path, seconds: int, seed: int = 0) -> Path:
    """48 kHz stereo PCM_16 FLAC, written 10 s at a time (FLAC level 0: ~0.8 s per 10 minutes): a 440 Hz tone
    whose level changes every second (seeded), the right channel an inverted half of the left."""
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE_IN) / RATE_IN).astype(np.float32)
    levels = np.random.default_rng(seed).uniform(0.1, 0.9, seconds).astype(np.float32)
    block = np.empty((10 * RATE_IN, 2), np.float32)
    with sf.SoundFile(str(path), "w", RATE_IN, 2, "PCM_16", compression_level=0.0) as fh:
        for start in range(0, seconds, 10):
            n = min(10, seconds - start)
            for k in range(n):
                block[k * RATE_IN : (k + 1) * RATE_IN, 0] = levels[start + k] * tone
            block[: n * RATE_IN, 1] = -0.5 * block[: n * RATE_IN, 0]
            fh.write(block[: n * RATE_IN])
    return path


def _limited(limit_bytes: int):
    def preexec():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    return preexec


def imports_bytes() -> int:
    """Peak address space of a process that has imported what ``prepare-audio`` imports (torch among them)."""
    out = subprocess.run([sys.executable, "-c", _IMPORTS], capture_output=True, text=True, check=True).stdout
    return int(out) * 1024


def prepare_under_limit(inputs: list[Path], out: Path, limit_bytes: int) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "prepare-audio", *map(str, inputs),
               "--out", str(out), "--workers", "2", "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, preexec_fn=_limited(limit_bytes), timeout=600)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc/self/status are Linux's")
def test_long_recordings_prepare_under_an_address_space_limit(tmp_path):
    minutes = 25
    (tmp_path / "in").mkdir()
    files = [write_long_flac(tmp_path / "in" / "take0.flac", minutes * 60), tmp_path / "in" / "take1.flac"]
    shutil.copyfile(files[0], files[1])  # a second recording, so that both workers decode at once
    limit = imports_bytes() + (HEADROOM_MIB << 20)
    # the limit is tight: the whole-file path, in one process and without a worker pool, fails under it
    whole = subprocess.run([sys.executable, "-c", _WHOLE_FILE, str(files[0])], capture_output=True, text=True,
                           preexec_fn=_limited(limit), timeout=600)
    assert whole.returncode != 0 and ("MemoryError" in whole.stderr or "Cannot allocate memory" in whole.stderr), \
        whole.stderr[-2000:]

    done = prepare_under_limit([tmp_path / "in"], tmp_path / "ds", limit)
    assert done.returncode == 0, done.stderr[-3000:]
    ds = PreparedDataset(tmp_path / "ds")
    samples = minutes * 60 * RATE_OUT
    # two files in natural order, 88/6/6: the first trains, the second tests (as the whole-file path split them)
    assert [(f["key"], f["split"], f["samples"]) for f in ds.manifest["files"]] == [
        ("take0.flac", "train", samples), ("take1.flac", "test", samples)]
    assert {name: ds.split(name).info["tokens"] for name in ds.split_names} == {"train": samples, "valid": 0,
                                                                              "test": samples}
    tokens = ds.split("train").record(0)
    assert tokens.size == samples and tokens.min() == 0 and tokens.max() == 255  # minmax spans the codes
    assert np.array_equal(ds.split("test").record(0), tokens)  # the same recording, decoded by the other worker
    assert not [p.name for p in (tmp_path / "ds").iterdir() if p.name.startswith(".")]  # no temporary file left


def main() -> int:
    parser = argparse.ArgumentParser(description="prepare-audio --workers 2 on one long FLAC under RLIMIT_AS")
    parser.add_argument("--minutes", type=int, default=180)
    parser.add_argument("--limit-mib", type=int, default=2048)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        flac = write_long_flac(Path(folder) / "long.flac", args.minutes * 60)
        written = time.perf_counter()
        done = prepare_under_limit([flac], Path(folder) / "ds", args.limit_mib << 20)
        ended = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{args.minutes} min 48 kHz stereo FLAC written in {written - started:.1f} s; prepare-audio --workers 2 "
          f"under RLIMIT_AS {args.limit_mib} MiB: exit {done.returncode} in {ended - written:.1f} s, peak RSS of "
          f"the largest process {peak:.0f} MiB")
    print(done.stdout.strip() or done.stderr[-3000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
