"""prepare_audio end to end on small generated files: modes, splits, labels, determinism, no-op reruns, CLI."""
import json

import numpy as np
import pytest

from mamba_bio_audio.data_prep.formats.audio_encode import encode_audio
from mamba_bio_audio.data_prep.formats.audio_io import load_mono
from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.cli import main


def _folder_bytes(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_long_mode_split_records_and_tokens(tmp_path, audio):
    files = audio.noise_files(tmp_path / "in", 6, rate=44100, ext="wav", name="take{i}")
    files += audio.noise_files(tmp_path / "in", 6, rate=22050, ext="flac", name="take{i}", seed=1)
    result = prepare_audio([tmp_path / "in"], tmp_path / "ds", workers=1)
    assert not result.up_to_date and result.seconds_in == pytest.approx(1.2)
    ds = PreparedDataset(tmp_path / "ds")
    manifest = ds.manifest
    assert ds.kind == "audio" and ds.split_names == ["train", "valid", "test"]
    assert manifest["tokenizer"]["type"] == "mu-law" and manifest["tokenizer"]["start_token_id"] == 128
    assert manifest["parameters"]["rate"] == 16000 and manifest["audio"]["mode"] == "long"
    assert [s["sha256"] for s in manifest["sources"]] and len(manifest["sources"]) == 12
    # natural order take0.flac, take0.wav, take1.flac, ...; 12 files -> 10 / 1 / 1
    keys = [f["key"] for f in manifest["files"]]
    assert keys[:3] == ["take0.flac", "take0.wav", "take1.flac"]
    assert [f["split"] for f in manifest["files"]] == ["train"] * 10 + ["valid", "test"]
    for entry, path in zip(manifest["files"], sorted(files, key=lambda p: (int(p.stem[4:]), p.suffix))):
        expected = encode_audio(load_mono(path, 16000).samples, "minmax").tokens
        np.testing.assert_array_equal(ds.split(entry["split"]).record(entry["record"]), expected)
        assert entry["samples"] == expected.size == 1600


def test_parallel_equals_serial_and_reruns_are_noops(tmp_path, audio):
    audio.noise_files(tmp_path / "in", 9, rate=48000, seconds=0.3)
    prepare_audio([tmp_path / "in"], tmp_path / "one", workers=1)
    prepare_audio([tmp_path / "in"], tmp_path / "two", workers=2)
    one, two = _folder_bytes(tmp_path / "one"), _folder_bytes(tmp_path / "two")
    assert json.loads(one.pop("manifest.json")) == json.loads(two.pop("manifest.json"))
    assert one == two
    before = (tmp_path / "one" / "manifest.json").stat().st_mtime_ns
    assert prepare_audio([tmp_path / "in"], tmp_path / "one", workers=1).up_to_date
    assert (tmp_path / "one" / "manifest.json").stat().st_mtime_ns == before
    assert not prepare_audio([tmp_path / "in"], tmp_path / "one", workers=1, force=True).up_to_date
    assert not prepare_audio([tmp_path / "in"], tmp_path / "one", workers=1, normalize="peak").up_to_date
    audio.noise_files(tmp_path / "in", 1, rate=48000, seconds=0.3, seed=7)  # 0.wav changes
    assert not prepare_audio([tmp_path / "in"], tmp_path / "one", workers=1, normalize="peak").up_to_date


def test_clips_mode_labels_cut_and_lists(tmp_path, audio):
    root = tmp_path / "speech_commands"
    for word in ("yes", "no", "up"):
        for i in range(4):
            seconds = 1.3 if i == 0 else 0.5  # one too long (cut), the others short (padded by readers)
            audio.write(root / word / f"spk{i}_nohash_0.wav", audio.sine(seconds, 16000, 200 + 100 * i), 16000)
    (root / "validation_list.txt").write_text("no/spk1_nohash_0.wav\nyes/spk1_nohash_0.wav\ndown/x_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("up/spk2_nohash_0.wav\n")
    prepare_audio([root], tmp_path / "ds", mode="clips", labels=["yes", "no"], valid_list=root / "validation_list.txt",
                  test_list=root / "testing_list.txt", workers=1)
    ds = PreparedDataset(tmp_path / "ds")
    assert ds.manifest["audio"]["labels"] == ["yes", "no"] and ds.manifest["audio"]["clip_samples"] == 16000
    files = ds.manifest["files"]
    assert len(files) == 8 and all(f["label"] in ("yes", "no") for f in files)  # "up" left out
    for f in files:
        split = ds.split(f["split"])
        assert split.label(f["record"]) == ["yes", "no"].index(f["key"].split("/")[0])
        assert split.record(f["record"]).size == (16000 if f["key"].endswith("spk0_nohash_0.wav") else 8000)
        assert f["cut"] == f["key"].endswith("spk0_nohash_0.wav")
    assert sorted(f["key"] for f in files if f["split"] == "valid") == ["no/spk1_nohash_0.wav", "yes/spk1_nohash_0.wav"]
    assert ds.split("test").info["records"] == 0  # the only test entry is an "up" clip
    assert ds.manifest["audio"]["stats"]["cut_clips"] == 2


def test_clips_labels_from_names_in_natural_order(tmp_path, audio):
    for name in ("10_a", "2_a", "2_b", "1_a"):
        audio.write(tmp_path / "in" / f"{name}.wav", audio.sine(0.1, 8000), 8000)
    prepare_audio([tmp_path / "in"], tmp_path / "ds", mode="clips", label_from="name", clip_seconds=0.05,
                  split="100,0,0", workers=1)
    ds = PreparedDataset(tmp_path / "ds")
    assert ds.manifest["audio"]["labels"] == ["1", "2", "10"]
    train = ds.split("train")
    assert [train.label(i) for i in range(len(train))] == [0, 1, 1, 2]
    assert train.record(0).size == 800


def test_option_errors(tmp_path, audio):
    audio.noise_files(tmp_path / "in", 2)
    for kwargs, message in [({"mode": "windows"}, "mode"), ({"rate": 0}, "unsupported target sample rate"),
                            ({"split": "50,50"}, "percentages"), ({"normalize": "rms"}, "normalize"),
                            ({"split": "80,10,10", "valid_list": tmp_path / "v.txt"}, "not both"),
                            ({"mode": "clips", "clip_seconds": 0}, "clip_seconds"),
                            ({"mode": "clips", "labels": ["cat"]}, "no input file has one of the labels")]:
        with pytest.raises(ValueError, match=message):
            prepare_audio([tmp_path / "in"], tmp_path / "ds", workers=1, **kwargs)
    assert not (tmp_path / "ds").exists()


def test_cli(tmp_path, audio, capsys):
    audio.noise_files(tmp_path / "in", 3)
    assert main(["prepare-audio", str(tmp_path / "in"), "--out", str(tmp_path / "ds"), "--workers", "1",
                 "--no-progress"]) == 0
    assert "train 2 records" in capsys.readouterr().out
    assert main(["prepare-audio", str(tmp_path / "in"), "--out", str(tmp_path / "ds"), "--no-progress"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["prepare-audio", str(tmp_path / "in"), "--out", str(tmp_path / "x"), "--rate", "16000.5",
                 "--no-progress"]) == 2
    assert "unsupported target sample rate 16000.5" in capsys.readouterr().err
