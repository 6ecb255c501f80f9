"""Every command that writes a folder uses only a new, empty or own-kind folder: anything else is refused before
any work with exit status 2 and one line naming the folder, every file in it left byte for byte; an input inside
the output folder is refused by name; replacing a real dataset keeps working.

The oracle is the real file state: a snapshot of every file's bytes taken before the command, compared after.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mamba_bio_audio.data_prep.datasets.prepare_dna import prepare_dna
from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.folder_kinds import FolderRefused


def cli(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file and folder under ``folder`` (relative path -> bytes, None for a folder)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def one_line_error(done: subprocess.CompletedProcess, *names: str) -> str:
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert all(name in lines[0] for name in names), lines[0]
    return lines[0]


def fasta(path: Path, n: int = 3000, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f">chr{i}\n{''.join(rng.choice(list('ACGT'), n))}\n" for i in (1, 2)))
    return path


def foreign_folder(folder: Path) -> dict[str, bytes]:
    """A folder of someone's files (one in a sub-folder); returns its snapshot."""
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "config.json").write_text('{"lr": 0.1}\n')
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)))
    return snapshot(folder)


def test_prepare_dna_refuses_the_folder_of_its_own_input(tmp_path):
    mine = tmp_path / "mine"
    fasta(mine / "g.fa")
    before = foreign_folder(mine)
    line = one_line_error(cli("prepare-dna", "mine/g.fa", "--out", "mine", cwd=tmp_path), "mine", "g.fa")
    assert "inside" in line
    assert snapshot(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]  # no lock, temporary or scratch left


def test_prepare_audio_refuses_the_recordings_folder(tmp_path):
    import soundfile as sf

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    sf.write(str(recordings / "take1.wav"), np.zeros(800, np.float32), 8000)
    before = foreign_folder(recordings)
    one_line_error(cli("prepare-audio", recordings, "--out", recordings, "--no-progress"), str(recordings), "take1.wav")
    assert snapshot(recordings) == before


def test_prepare_species_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    human, chimp = fasta(tmp_path / "human.fa"), fasta(tmp_path / "chimp.fa", seed=1)
    out = tmp_path / "species"
    before = foreign_folder(out)
    line = one_line_error(cli("prepare-species", "--genome", f"human={human}", "--genome", f"chimp={chimp}",
                              "--out", out, "--valid-chroms", "chr2", "--test-chroms", "", "--window", "100"),
                          str(out), "notes.txt")
    assert "no manifest.json, so it is not a prepared dataset" in line
    assert snapshot(out) == before


def test_examples_refuse_before_any_fetch(tmp_path, capsys):
    from mamba_bio_audio.data_prep.examples.debian import fetch_package
    from mamba_bio_audio.pipelines.cli import main

    data, cache = tmp_path / "data", tmp_path / "cache"
    before = foreign_folder(data / "hg_small")
    one_line_error(cli("examples", "dna", "--out", data, "--only", "hg_small", "--cache", cache, "--quiet"),
                   str(data / "hg_small"))
    assert snapshot(data / "hg_small") == before and not cache.exists()  # nothing fetched
    piano = foreign_folder(data / "piano")
    assert main(["examples", "audio", "--out", str(data), "--only", "piano", "--no-progress"]) == 2
    assert f"{data / 'piano'}: refused" in capsys.readouterr().err  # before the tools are even looked for
    assert snapshot(data / "piano") == piano and not (data / "raw_audio").exists()
    renders = foreign_folder(data / "raw_audio" / "piano")
    (data / "piano" / "notes.txt").unlink()
    for name in ("sub/data.bin", "sub", "config.json"):
        path = data / "piano" / name
        path.rmdir() if path.is_dir() else path.unlink()
    assert main(["examples", "audio", "--out", str(data), "--only", "piano", "--no-progress"]) == 2
    assert "not part of a folder of piano renders" in capsys.readouterr().err
    assert snapshot(data / "raw_audio" / "piano") == renders
    package = foreign_folder(cache / "vt-examples")
    with pytest.raises(FolderRefused, match="vt-examples: refused.*not part of an unpacked Debian package"):
        fetch_package("vt-examples", cache)  # the Debian cache: refused before apt-get runs
    assert snapshot(cache / "vt-examples") == package


def test_pretrain_refuses_a_foreign_run_folder(tmp_path):
    run = tmp_path / "results"
    before = foreign_folder(run)
    line = one_line_error(cli("pretrain", "experiment=dna/hg_small_cpu", f"paths.output_dir={run}",
                              f"paths.data_dir={tmp_path / 'absent'}"), str(run))
    assert "not part of a run folder" in line
    assert snapshot(run) == before


def test_a_run_folder_of_ours_is_used_and_a_changed_one_refused(tmp_path):
    from omegaconf import OmegaConf

    from mamba_bio_audio.pipelines.commands.output_folders import check_run_folder

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (run / "metrics.json").write_text("{}")
    cfg = OmegaConf.create({"paths": {"output_dir": str(run)}})
    check_run_folder(cfg)  # resuming in the same folder
    (run / "export").mkdir()
    (run / "export" / "config.json").write_text('{"d_model": 8}')  # mamba_ssm's, not an export of ours
    with pytest.raises(FolderRefused, match="export/ is not a model export"):
        check_run_folder(cfg)


def test_sample_refuses_a_foreign_out_folder_before_loading(tmp_path):
    out = tmp_path / "mine"
    before = foreign_folder(out)
    line = one_line_error(cli("sample", f"checkpoint={tmp_path / 'no_such_model'}", f"out={out}"), str(out))
    assert "not part of a sample folder" in line  # refused before the (missing) checkpoint is even looked at
    assert snapshot(out) == before


def test_quickstart_refuses_a_foreign_out_folder(tmp_path, capsys):
    from mamba_bio_audio.pipelines.cli import main

    out = tmp_path / "report"
    before = foreign_folder(out)
    assert main(["quickstart", "--out", str(out), "--data", str(tmp_path / "data")]) == 2
    assert "not part of a quickstart folder" in capsys.readouterr().err
    assert snapshot(out) == before and not (tmp_path / "data").exists()


def test_save_pretrained_writes_only_where_it_may(tmp_path):
    from mamba_bio_audio import MambaConfig, MambaLMHeadModel
    from mamba_bio_audio.models import load_pretrained

    model = MambaLMHeadModel(MambaConfig(d_model=8, n_layer=1, vocab_size=16))
    foreign = tmp_path / "foreign"
    before = foreign_folder(foreign)
    with pytest.raises(FolderRefused, match="foreign: refused: its config.json is not a model export"):
        model.save_pretrained(foreign)
    assert snapshot(foreign) == before
    weights_only = tmp_path / "weights"
    weights_only.mkdir()
    (weights_only / "model.safetensors").write_bytes(b"someone's weights")
    with pytest.raises(FolderRefused, match="model.safetensors without our config.json"):
        model.save_pretrained(weights_only)
    assert (weights_only / "model.safetensors").read_bytes() == b"someone's weights"
    export = model.save_pretrained(tmp_path / "export")
    model.save_pretrained(export)  # an export of ours is replaced
    assert load_pretrained(export).config.d_model == 8


def test_replacing_a_dataset_still_works_and_a_changed_one_is_refused(tmp_path):
    genome = fasta(tmp_path / "raw" / "g.fa")
    out = tmp_path / "ds"
    prepare_dna([genome], out, held_out={"valid": ["chr2"]})
    prepare_dna([genome], out, force=True)  # another preparation replaces it
    assert PreparedDataset(out).split_names == ["train"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "raw"]
    (out / "my_notes.txt").write_text("keep me")
    before = snapshot(out)
    with pytest.raises(FolderRefused, match="ds: refused: it holds my_notes.txt, which is not part of a prepared"):
        prepare_dna([genome], out, force=True)
    assert snapshot(out) == before
    (out / "my_notes.txt").unlink()
    copy = out / "g.fa"
    copy.write_bytes(genome.read_bytes())
    with pytest.raises(FolderRefused, match="the input .*g.fa lies inside it"):  # a dataset holding the input
        prepare_dna([copy], out, force=True)
    assert copy.read_bytes() == genome.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "dna" and manifest["splits"]["train"]["records"] == 2


def test_an_empty_folder_and_a_file_in_the_way(tmp_path):
    genome = fasta(tmp_path / "raw" / "g.fa")
    (tmp_path / "empty").mkdir()
    prepare_dna([genome], tmp_path / "empty")
    assert PreparedDataset(tmp_path / "empty").split_names == ["train"]
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(FolderRefused, match="it is a file, not a prepared dataset"):
        prepare_dna([genome], tmp_path / "file")
    assert (tmp_path / "file").read_text() == "not a folder"
