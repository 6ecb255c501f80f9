"""One file to one record in bounded memory (data_prep/datasets/audio_record.py): the streamed, spilled path
gives the tokens of a one-shot oracle (whole file read, averaged, ``soxr.resample`` at once, encoded at once)."""
import concurrent.futures.process
import json
import multiprocessing
import threading

import numpy as np
import pytest
import soundfile as sf
import soxr

from mamba_bio_audio.data_prep.datasets import audio_record
from mamba_bio_audio.data_prep.datasets.audio_record import encode_file
from mamba_bio_audio.data_prep.datasets.parallel import PoolStopped, ordered_map
from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.data_prep.formats.audio_encode import encode_audio


def _stereo(path, seconds, rate=48000, seed=0):
    """48 kHz stereo PCM_16 FLAC of two different noisy tones; longer than several decode blocks (2**18 frames)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    left = 0.5 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 0.3 * t) + 0.05 * rng.standard_normal(t.size)
    right = 0.3 * np.sin(2 * np.pi * 97 * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(str(path), np.stack([left, right], 1).astype(np.float32), rate, subtype="PCM_16")
    return path


def _one_shot(path, rate, normalize):
    """The oracle: the whole file in memory, resampled in one call."""
    data, rate_in = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    return encode_audio(soxr.resample(mono, rate_in, rate, quality="HQ"), normalize)


@pytest.mark.parametrize("normalize", ["minmax", "peak", "none"])
def test_spilled_record_equals_the_one_shot_oracle(tmp_path, normalize):
    path = _stereo(tmp_path / "take.flac", 12.0)
    expected = _one_shot(path, 16000, normalize)
    # 30000 samples in memory at most: the record (192000 samples) spills, and the second pass reads 2**20 blocks
    record = encode_file(path, 16000, normalize, spill_dir=tmp_path, memory_samples=30000)
    assert record.path is not None and record.tokens is None
    # soxr's stream gives the one-shot output exactly (its result does not depend on how the input is cut), and
    # the encoding is per sample: equal bit for bit, no tolerance needed
    np.testing.assert_array_equal(record.array(), expected.tokens)
    assert (record.size, record.silent, record.clipped, record.cut) == (192000, expected.silent, expected.clipped,
                                                                       False)
    record.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.flac"]  # both temporary files are gone
    in_memory = encode_file(path, 16000, normalize, spill_dir=tmp_path)
    assert in_memory.path is None and np.array_equal(in_memory.tokens, expected.tokens)


def test_clip_cut_keeps_the_start(tmp_path):
    path = _stereo(tmp_path / "take.flac", 3.0)
    record = encode_file(path, 16000, clip_samples=20000, spill_dir=tmp_path, memory_samples=5000)
    expected = encode_audio(soxr.resample(sf.read(str(path), dtype="float32")[0].mean(1, dtype=np.float32),
                                          48000, 16000, quality="HQ")[:20000], "minmax")
    assert record.cut and record.size == 20000
    np.testing.assert_array_equal(record.array(), expected.tokens)
    record.discard()


def test_spilling_prepare_equals_the_in_memory_one(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    for i in range(3):
        _stereo(tmp_path / "in" / f"take{i}.flac", 2.0 + i, seed=i)
    prepare_audio([tmp_path / "in"], tmp_path / "memory", split="34,33,33", workers=1)
    monkeypatch.setattr(audio_record, "MEMORY_SAMPLES", 7000)  # forked workers see it too
    prepare_audio([tmp_path / "in"], tmp_path / "spilled", split="34,33,33", workers=2)
    memory, spilled = PreparedDataset(tmp_path / "memory"), PreparedDataset(tmp_path / "spilled")
    assert json.dumps(memory.manifest["files"]) == json.dumps(spilled.manifest["files"])  # splits, records, counts
    assert sorted(p.name for p in (tmp_path / "spilled").iterdir()) == sorted(
        p.name for p in (tmp_path / "memory").iterdir())  # no temporary file left in the dataset
    for entry in spilled.manifest["files"]:
        tokens = spilled.split(entry["split"]).record(entry["record"])
        np.testing.assert_array_equal(tokens, memory.split(entry["split"]).record(entry["record"]))
        np.testing.assert_array_equal(tokens, _one_shot(tmp_path / "in" / entry["key"], 16000, "minmax").tokens)
    assert [e["split"] for e in spilled.manifest["files"]] == ["train", "valid", "test"]


def _fail_thread_start(self):
    raise RuntimeError("can't start new thread")


@pytest.mark.parametrize("thread", ["feeder", "manager"])
def test_a_pool_that_cannot_start_a_thread_raises_and_ends_its_workers(monkeypatch, thread):
    # what happens under a tight `ulimit -v`: a thread cannot start. The queue's feeder thread is started by the
    # pool's manager thread, which dies, and concurrent.futures alone would wait for the results forever; the
    # manager thread is started by the first submit, after the workers were forked, which would wait forever
    # for work (and the interpreter for them at exit)
    if thread == "feeder":
        monkeypatch.setattr(multiprocessing.queues.Queue, "_start_thread", _fail_thread_start)
        monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the manager thread's traceback
    else:
        monkeypatch.setattr(concurrent.futures.process._ExecutorManagerThread, "start", _fail_thread_start)
    error = PoolStopped if thread == "feeder" else RuntimeError
    with pytest.raises(error, match="2 worker processes stopped answering|can't start new thread"):
        list(ordered_map(abs, [-1, -2, -3], workers=2))
    assert multiprocessing.active_children() == []  # the workers were ended, none left waiting


def test_a_file_that_fails_after_spilling_leaves_no_temporary_file(tmp_path):
    whole = _stereo(tmp_path / "whole.flac", 12.0)
    (tmp_path / "spill").mkdir()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])  # fails after a few decoded blocks
    with pytest.raises(ValueError, match=r"cut\.flac: decoding failed after frame [1-9]\d* .*truncated or corrupt"):
        encode_file(cut, 16000, spill_dir=tmp_path / "spill", memory_samples=30000)
    assert list((tmp_path / "spill").iterdir()) == []
