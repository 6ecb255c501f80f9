import json
import pickle
import re

import numpy as np
import pytest
import soundfile as sf
import torch

from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.prepared import (
    FORMAT_VERSION, DatasetChangedError, PreparedDataset, PreparedDatasetWriter, is_up_to_date, source_entry,
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


# --- checked when opened -------------------------------------------------------------------------------------

def _dna_dataset(folder):
    fasta = folder / "g.fa"
    rng = np.random.default_rng(0)
    fasta.write_text("".join(f">chr{i}\n{''.join(rng.choice(list('ACGT'), 3000))}\n" for i in (1, 2, 3)))
    prepare_dna([fasta], folder / "dna", held_out={"valid": ["chr2"], "test": ["chr3"]})
    return folder / "dna"


def _audio_dataset(folder):
    rng = np.random.default_rng(0)
    (folder / "wav").mkdir()
    for i in range(4):
        sf.write(str(folder / "wav" / f"{i}.wav"), (0.3 * rng.standard_normal(1600)).astype(np.float32), 16000)
    prepare_audio([folder / "wav"], folder / "audio", mode="long", split="50,25,25")
    return folder / "audio"


@pytest.mark.parametrize("make", [_dna_dataset, _audio_dataset], ids=["dna", "audio"])
def test_truncated_token_file_names_the_file_and_both_sizes(tmp_path, make):
    folder = make(tmp_path)
    tokens = PreparedDataset(folder).split("train").info["tokens"]
    path = folder / "train.tokens.u8"
    assert path.stat().st_size == tokens > 100
    with open(path, "r+b") as fh:
        fh.truncate(tokens - 100)
    with pytest.raises(ValueError, match=rf"{path}: {tokens - 100:,} bytes, but manifest.json gives split 'train' "
                                         rf"{tokens:,} tokens .* truncated"):
        PreparedDataset(folder)


def test_records_disagreeing_with_the_manifest(tmp_path):
    out = tmp_path / "ds"
    _write(out, [("train", [7, 8, 9], None), ("train", [10, 7], None)])
    records = np.load(out / "train.records.npy")
    np.save(out / "train.records.npy", records[:1])
    with pytest.raises(ValueError, match=r"train.records.npy: 1 records, but manifest.json gives split 'train' 2"):
        PreparedDataset(out)
    records[1, 1] = 1  # the last record ends at 4 of 5 tokens
    np.save(out / "train.records.npy", records)
    with pytest.raises(ValueError, match=r"train.records.npy: records must lie inside the 5 tokens .* ends at 4"):
        PreparedDataset(out)
    (out / "train.records.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"train.records.npy: not a readable records file"):
        PreparedDataset(out)


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x.y"])
def test_split_names_must_be_identifiers(tmp_path, name):
    out = tmp_path / "ds"
    _write(out, [("train", [7, 8], None)])
    (tmp_path / "x.tokens.u8").write_bytes(b"\x07\x08")  # what "../x" would reach
    np.save(tmp_path / "x.records.npy", np.array([[0, 2]], np.int64))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"][name] = {"records": 1, "tokens": 2}
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"manifest.json: split name {re.escape(repr(name))} is not an identifier"):
        PreparedDataset(out)


# --- one version per reader ----------------------------------------------------------------------------------

OLD = [[7, 8, 9, 10, 7], [9] * 17, [10, 10, 8]]
NEW = [[8] * 4, [7, 9] * 9]


class _Records(torch.utils.data.Dataset):
    def __init__(self, split):
        self.split = split

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        return torch.from_numpy(self.split.record(i).astype(np.int64))


def test_reader_keeps_the_version_it_opened(tmp_path):
    out = tmp_path / "ds"
    _write(out, [("train", r, None) for r in OLD])
    ds = PreparedDataset(out)
    mapped = ds.split("train")
    mapped.record(0)  # this split's tokens are mapped before the folder is prepared again, the other's after
    unmapped = PreparedDataset(out).split("train")
    _write(out, [("train", r, None) for r in NEW])  # the writer swaps the folder; the old files are deleted
    assert [r.tolist() for r in (PreparedDataset(out).split("train").record(i) for i in range(2))] == NEW
    for split in (mapped, unmapped):
        assert len(split) == len(OLD)
        assert [split.record(i).tolist() for i in range(len(OLD))] == OLD
        assert split.read(5, 17).tolist() == OLD[1]
        # forked DataLoader workers inherit the open files: they read the old version too
        loader = torch.utils.data.DataLoader(_Records(split), batch_size=None, num_workers=2,
                                             multiprocessing_context="fork")
        assert [x.tolist() for x in loader] == OLD
        # a spawned worker gets the split pickled: it cannot reach the old files and says so
        with pytest.raises(DatasetChangedError, match=rf"{out} was prepared again .* restart the run"):
            pickle.loads(pickle.dumps(split))


def test_pickled_reader_of_an_unchanged_folder(tmp_path):
    out = tmp_path / "ds"
    _write(out, [("train", r, None) for r in OLD])
    split = pickle.loads(pickle.dumps(PreparedDataset(out).split("train")))
    assert [split.record(i).tolist() for i in range(len(OLD))] == OLD
    split.check_unchanged()
    _write(out, [("train", r, None) for r in NEW])
    with pytest.raises(DatasetChangedError, match="train.tokens.u8 is another file now"):
        split.check_unchanged()


# --- through the command line: the dataset must fit the model -------------------------------------------------

def test_dataset_kind_and_tokens_must_fit_the_model(tmp_path, capsys):
    from mamba_bio_audio.pipelines.cli import main

    audio, dna = _audio_dataset(tmp_path), _dna_dataset(tmp_path)
    base = ["pretrain", "experiment=dna/hg_small_cpu", f"paths.data_dir={tmp_path}",
            f"paths.output_dir={tmp_path / 'run'}", "logger=csv", "trainer.accelerator=cpu", "trainer.devices=1", "~callbacks.rich_progress_bar",
            "++net.config.n_layer=1", "++net.config.d_model=16", "data.seq_len=32", "data.batch_size=2",
            "trainer.max_steps=1"]

    def refused(*overrides) -> str:
        assert main(base + list(overrides)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1
        return err

    # 256 mu-law classes into a DNA model: refused before any step, not an IndexError in the embedding
    err = refused(f"data.path={audio}")
    assert f"dataset {audio} (kind audio, tokenizer mu-law, 256 token ids)" in err and "DnaDataModule" in err
    # a DNA dataset into a DNA model that embeds fewer ids than the tokenizer makes: refused when fitting begins
    err = refused(f"data.path={dna}", "++net.config.vocab_size=8")
    assert f"dataset {dna} (kind dna, tokenizer nucleotide, 12 token ids) does not fit the model" in err
    assert "the model embeds 8 token ids (net.config.vocab_size)" in err
    with open(dna / "valid.tokens.u8", "r+b") as fh:  # a cut file: refused with both sizes
        fh.truncate(1000)
    err = refused(f"data.path={dna}")
    assert f"{dna / 'valid.tokens.u8'}: 1,000 bytes, but manifest.json gives split 'valid' 3,000 tokens" in err
    assert not (tmp_path / "run" / "checkpoints").exists()
