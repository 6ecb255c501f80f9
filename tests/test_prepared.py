import json

import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets.prepared import (
    FORMAT_VERSION, PreparedDataset, PreparedDatasetWriter, is_up_to_date, source_entry,
)


def _write(out, records, labelled=False, params=None, sources=()):
    with PreparedDatasetWriter(out, "species" if labelled else "dna", tokenizer={"name": "nucleotide"},
                               sources=list(sources), parameters=params or {"k": 1}, labelled=labelled) as w:
        for split, tokens, label in records:
            w.split(split).add(np.asarray(tokens, dtype=np.uint8), label)


def test_round_trip(tmp_path):
    out = tmp_path / "ds"
    rng = np.random.default_rng(0)
    recs = [("train", rng.integers(7, 11, n), None) for n in (5, 0, 17)] + [("valid", rng.integers(7, 11, 3), None)]
    _write(out, recs)
    ds = PreparedDataset(out)
    assert ds.kind == "dna" and ds.split_names == ["train", "valid"]
    train = ds.split("train")
    assert len(train) == 3 and train.info == {"records": 3, "tokens": 22}
    for i, (_, tokens, _) in enumerate(recs[:3]):
        np.testing.assert_array_equal(train.record(i), tokens)
    assert ds.manifest["format_version"] == FORMAT_VERSION
    with pytest.raises(KeyError, match="no split 'test'"):
        ds.split("test")


def test_labels(tmp_path):
    _write(tmp_path / "ds", [("train", [7, 8], 3), ("train", [9], 1)], labelled=True)
    split = PreparedDataset(tmp_path / "ds").split("train")
    assert [split.label(i) for i in range(2)] == [3, 1]
    with pytest.raises(ValueError, match="every record needs a label"):
        _write(tmp_path / "bad", [("train", [7], 1), ("train", [8], None)], labelled=True)


def test_failure_leaves_existing_dataset_untouched(tmp_path):
    out = tmp_path / "ds"
    _write(out, [("train", [7, 8, 9], None)])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OSError, match="No space left"):
        with PreparedDatasetWriter(out, "dna", tokenizer={}, sources=[], parameters={}) as w:
            w.split("train").add(np.zeros(10, np.uint8))
            raise OSError(28, "No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_folder_without_manifest_is_not_a_dataset(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "train.tokens.u8").write_bytes(b"\x07")
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        PreparedDataset(tmp_path / "half")


def test_missing_split_file_and_bad_version(tmp_path):
    out = tmp_path / "ds"
    _write(out, [("train", [7], None)])
    (out / "train.records.npy").unlink()
    with pytest.raises(FileNotFoundError, match="train.records.npy"):
        PreparedDataset(out)
    _write(out, [("train", [7], None)])
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = 99
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="format_version 99"):
        PreparedDataset(out)


def test_up_to_date_detects_changes(tmp_path):
    src = tmp_path / "a.fa"
    src.write_text(">a\nACGT\n")
    sources = [source_entry(src)]
    _write(tmp_path / "ds", [("train", [7], None)], params={"k": 1}, sources=sources)
    assert is_up_to_date(tmp_path / "ds", "dna", sources, {"k": 1})
    assert not is_up_to_date(tmp_path / "ds", "dna", sources, {"k": 2})
    src.write_text(">a\nACGA\n")
    assert not is_up_to_date(tmp_path / "ds", "dna", [source_entry(src)], {"k": 1})
