"""``evaluate-audio`` writes only folders of its own kinds: ``--save-samples`` a folder of drawn clips (replaced
as a whole, so no clip of an earlier draw stays), ``--train-classifier`` a digit classifier folder. A foreign
folder is refused before any work (exit 2, one line naming it), every file in it byte for byte unchanged.

The oracle is the real file state: a snapshot of every file's bytes before the command, compared after."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mamba_bio_audio.folder_kinds import FolderRefused
from mamba_bio_audio.models import digit_classifier as dc
from mamba_bio_audio.models.sashimi import SashimiLM
from mamba_bio_audio.models.sashimi_config import SashimiConfig
from mamba_bio_audio.pipelines.commands.evaluate_audio import draw_clips

RATE, CLIP = 16000, 64


def cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mamba_bio_audio.pipelines.cli", "evaluate-audio", *map(str, args)],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def users_folder(folder: Path) -> dict[str, bytes | None]:
    """A folder of the user's own files, a WAV named like a drawn clip among them."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "config.json").write_text('{"lr": 0.1}\n')
    sf.write(str(folder / "clip_000.wav"), np.zeros(CLIP, np.float32), RATE)
    return snapshot(folder)


@pytest.mark.parametrize("option", ["--save-samples", "--classifier"])
def test_a_foreign_folder_is_refused_before_any_work(tmp_path, option):
    mine = tmp_path / "mine"
    before = users_folder(mine)
    # neither the dataset nor the model exists: a refusal that came after any loading would name them instead
    extra = ["--checkpoint", "no_model"] if option == "--save-samples" else ["--train-classifier"]
    done = cli("--real", "no_dataset", option, "mine", *extra, "--out", "result.json", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "mine: refused: it holds" in lines[0], done.stderr
    assert snapshot(mine) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_drawn_clips_replace_an_earlier_draw_and_nothing_else(tmp_path):
    torch.manual_seed(0)
    tiny = SashimiConfig.from_preset("sc09_small", d_model=8, n_layers=1, pool=[2, 2])
    SashimiLM(tiny).save_pretrained(tmp_path / "lm")
    drawn = tmp_path / "drawn"
    draw_clips(tmp_path / "lm", 3, CLIP, RATE, drawn, batch_size=3, seed=0)
    assert sorted(p.name for p in drawn.iterdir()) == ["clip_000.wav", "clip_001.wav", "clip_002.wav"]
    waves, _ = draw_clips(tmp_path / "lm", 2, CLIP, RATE, drawn, batch_size=2, seed=1)
    assert sorted(p.name for p in drawn.iterdir()) == ["clip_000.wav", "clip_001.wav"]  # no clip of the first draw
    saved = sf.read(str(drawn / "clip_001.wav"), dtype="float32")[0]
    np.testing.assert_allclose(saved, waves[1], atol=2 / 32767)  # 16-bit PCM
    (drawn / "notes.txt").write_text("mine\n")
    before = snapshot(drawn)
    with pytest.raises(FolderRefused, match="notes.txt"):
        draw_clips(tmp_path / "lm", 2, CLIP, RATE, drawn, batch_size=2, seed=2)
    assert snapshot(drawn) == before


def test_a_classifier_is_saved_over_its_own_kind_only(tmp_path):
    model = dc.DigitClassifier(dc.ClassifierConfig(labels=["a", "b"], clip_samples=800, n_mels=16, channels=8,
                                                   n_layers=2, pool=(2, 2)))
    folder = dc.save_classifier(model, tmp_path / "clf", {"run": 1})
    dc.save_classifier(model, folder, {"run": 2})  # a classifier folder is ours to replace
    assert dc.load_classifier(folder)[1] == {"run": 2}
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "training.json"]
    (folder / "config.json").write_text(json.dumps({"lr": 0.1}))  # someone's config: no longer a classifier
    before = snapshot(folder)
    with pytest.raises(FolderRefused, match="config.json is not that of a digit classifier"):
        dc.save_classifier(model, folder, {"run": 3})
    assert snapshot(folder) == before
