"""File discovery, natural order, splits and labels (data_prep/datasets/audio_sources.py)."""
from collections import Counter
from pathlib import Path

import pytest

from mamba_bio_audio.data_prep.datasets.audio_sources import (
    AudioSource, find_audio, label_name, parse_percent, read_list, split_by_hash, split_by_lists,
    split_by_order,
)


def test_find_audio_files_folders_globs(tmp_path, audio):
    audio.noise_files(tmp_path / "music", 3, ext="flac", name="song{i}")
    audio.noise_files(tmp_path / "music" / "sub", 1, name="deep")
    audio.noise_files(tmp_path / "music" / ".cache", 1)
    (tmp_path / "music" / "notes.txt").write_text("not audio")
    (tmp_path / "music" / ".hidden.wav").write_bytes(b"")
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"RIFF")
    found = find_audio([tmp_path / "music", str(tmp_path / "music" / "song*.flac"), odd])
    assert [s.key for s in found] == ["song0.flac", "song1.flac", "song2.flac", "sub/deep.wav", "odd.bin"]
    with pytest.raises(FileNotFoundError, match="no such audio file or folder"):
        find_audio([tmp_path / "nope"])
    with pytest.raises(FileNotFoundError, match="no such audio file or folder"):
        find_audio([str(tmp_path / "*.ogg")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files in"):
        find_audio([tmp_path / "empty"])


@pytest.mark.parametrize("n", [1, 3, 17, 100, 1001])
def test_order_split_is_deterministic_and_a_partition(n):
    splits = split_by_order(n, (88, 6, 6))
    assert splits == split_by_order(n, (88, 6, 6)) and len(splits) == n
    # contiguous blocks in file order: no file in two splits, train first, test last
    assert splits == sorted(splits, key=["train", "valid", "test"].index)
    counts = Counter(splits)
    assert counts["train"] == n * 88 // 100 and counts["train"] + counts["valid"] == n * 94 // 100


def test_hash_split_keeps_speakers_together_and_is_proportional():
    sources = [AudioSource(Path(f"/d/{word}/spk{s:04d}_nohash_{k}.wav"), Path("/d"))
               for word in ("yes", "no") for s in range(1000) for k in range(2)]
    splits = split_by_hash(sources, (80, 10, 10))
    by_speaker = {}
    for src, split in zip(sources, splits):
        by_speaker.setdefault(src.path.name.split("_nohash_")[0], set()).add(split)
    assert all(len(s) == 1 for s in by_speaker.values())
    shares = Counter(splits)
    assert 0.07 < shares["valid"] / len(splits) < 0.13 and 0.07 < shares["test"] / len(splits) < 0.13


def test_list_split_matches_trailing_components(tmp_path):
    root = Path("/data/speech_commands")
    sources = [AudioSource(root / w / f"{i}_nohash_0.wav", root) for w in ("one", "two") for i in range(3)]
    lists = tmp_path / "validation_list.txt"
    lists.write_text("# comment\none/1_nohash_0.wav\n./two/2_nohash_0.wav\nforward/9_nohash_0.wav\n\n")
    splits = split_by_lists(sources, read_list(lists), ["two/0_nohash_0.wav"])
    assert splits == ["train", "valid", "train", "test", "train", "valid"]
    with pytest.raises(ValueError, match="test list: none of its 1 entries"):
        split_by_lists(sources, [], ["three/0_nohash_0.wav"])


def test_labels_and_percent_parsing():
    src = AudioSource(Path("/d/seven/seven_017-b.wav"), Path("/d"))
    assert label_name(src, "folder") == "seven" and label_name(src, "name") == "seven"
    assert label_name(AudioSource(Path("/d/3-take2.wav"), Path("/d")), "name") == "3"
    assert parse_percent("80,10,10") == (80, 10, 10)
    for bad in ("80,10", "90,10,10", "a,b,c", "110,-5,-5"):
        with pytest.raises(ValueError, match="percentages"):
            parse_percent(bad)
