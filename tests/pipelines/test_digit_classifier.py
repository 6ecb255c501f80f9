"""The digit classifier (mamba_bio_audio/models/digit_classifier.py, trained by
pipelines/training/digit_classifier.py) on a tiny tone dataset: features, the voice split, training on some voices
and recognising a held-out one, saving and loading."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from mamba_bio_audio.data_prep.datasets.prepare_audio import prepare_audio
from mamba_bio_audio.models import digit_classifier as dc
from mamba_bio_audio.pipelines.evaluation.audio_metrics import inception_score, modified_inception_score
from mamba_bio_audio.pipelines.training import digit_classifier as dc_training

RATE, CLIP = 16000, 800  # 50 ms clips
LABELS = ["zero", "one", "two"]
TONES = {"zero": 500.0, "one": 1500.0, "two": 3500.0}
VOICES = ("tone_a", "tone_b", "tone_c", "tone_d")  # tone_b is held out
TINY = dict(n_mels=16, channels=8, n_layers=2, pool=(2, 2))
TINY_TRAIN = dict(epochs=20, batch_size=8, lr=1e-2, test_voices=("tone_b",), max_shift_s=0.005, noise_max=0.02,
                  freq_mask=2, time_masks=1, time_mask=1)  # 6 frames of 16 mels: small masks


def tone_clip(label: str, voice: int, index: int) -> np.ndarray:
    """A tone per label; voices differ in pitch (+-6 %), level, onset and a harmonic."""
    rng = np.random.default_rng([voice, index])
    t = np.arange(CLIP) / RATE
    f = TONES[label] * (1 + 0.04 * (voice - 1.5)) * (1 + 0.01 * rng.standard_normal())
    wave = np.sin(2 * np.pi * f * t) + 0.3 * voice / 3 * np.sin(4 * np.pi * f * t)
    wave *= (0.3 + 0.2 * voice) * np.clip((t - rng.uniform(0, 0.01)) * 400, 0, 1)
    return (wave + 0.01 * rng.standard_normal(CLIP)).astype(np.float32)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """A prepared clips dataset of 3 tone classes x 4 voices x 8 clips, split 50/25/25 by hash."""
    root = tmp_path_factory.mktemp("tones")
    index = 0
    for label in LABELS:
        (root / "raw" / label).mkdir(parents=True)
        for voice, name in enumerate(VOICES):
            for _ in range(8):
                sf.write(str(root / "raw" / label / f"{index:05d}_{name}.wav"), tone_clip(label, voice, index), RATE)
                index += 1
    prepare_audio([root / "raw"], root / "ds", mode="clips", split="50,25,25", clip_seconds=CLIP / RATE,
                  labels=LABELS, workers=1)
    return root / "ds"


@pytest.fixture(scope="module")
def trained(tones):
    """(folder, training report) of a tiny classifier trained on voices a, c and d of the tones."""
    config = dc.ClassifierConfig(labels=LABELS, clip_samples=CLIP, **TINY)
    report = dc_training.train_classifier(tones, tones / "classifier", dc_training.TrainConfig(**TINY_TRAIN), config, log=lambda _: None)
    return tones / "classifier", report


def test_mel_filterbank_is_triangles_on_the_mel_scale():
    fb = dc.mel_filterbank(16000, 480, 40, 20.0, 7600.0)
    assert fb.shape == (40, 241) and fb.dtype == np.float32 and fb.min() >= 0 and fb.max() <= 1
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and peaks[-1] > 200 and peaks[0] < 5
    bins = np.linspace(0, 8000, 241)
    assert not fb[:, (bins < 20) | (bins > 7600)].any()  # nothing outside f_min .. f_max
    widths = (fb > 0).sum(axis=1)
    assert widths[-1] > widths[0]  # wider filters at high frequencies


def test_log_mel_shapes_and_a_tone_lands_in_its_band():
    config = dc.ClassifierConfig(labels=LABELS, clip_samples=CLIP, n_mels=16)
    t = torch.arange(CLIP) / RATE
    waves = torch.stack([torch.sin(2 * math.pi * 500 * t), torch.sin(2 * math.pi * 3500 * t)])
    mel = dc.LogMel(config)(waves)
    assert mel.shape == (2, 16, CLIP // config.hop + 1) and mel.dtype == torch.float32
    low, high = mel.mean(dim=2).argmax(dim=1).tolist()
    assert low < high


def test_voice_is_read_from_the_file_name():
    assert dc_training.voice_of("eight/00008_espeak-ng_en-us-nyc-m7.wav") == "espeak-ng_en-us-nyc-m7"
    assert dc_training.voice_of("zero/00003_festival_kal_diphone.wav") == "festival_kal_diphone"
    with pytest.raises(ValueError, match="speaker1.wav: cannot tell the voice"):
        dc_training.voice_of("zero/speaker1.wav")
    assert dc_training.is_test_voice("espeak-ng_en-029-f2", dc_training.DEFAULT_TEST_VOICES)
    assert not dc_training.is_test_voice("espeak-ng_en-029-f3", dc_training.DEFAULT_TEST_VOICES)


def test_voice_split_holds_out_voices_from_every_dataset_split(tones):
    clips = dc_training.load_clips(tones)
    assert clips.tokens.shape == (96, CLIP) and clips.tokens.dtype == np.uint8
    parts = dc_training.voice_split(clips, ("tone_d",))
    assert {dc_training.voice_of(k) for k in parts["test"].keys} == {"tone_d"} and len(parts["test"]) == 24
    assert set(parts["test"].splits) == {"train", "valid", "test"}
    assert set(parts["train"].splits) == {"train"} and "tone_d" not in {dc_training.voice_of(k) for k in parts["train"].keys}
    assert sum(len(p) for p in parts.values()) == 96
    with pytest.raises(ValueError, match="leaves no train clips"):
        dc_training.voice_split(clips, ("tone_*",))


def test_augment_is_seeded_and_shifts_with_zero_fill():
    train = dc_training.TrainConfig(speed=(1.0, 1.0), max_shift_s=0.01, gain_db=(0.0, 0.0), noise_max=0.0)
    waves = torch.ones(5, 1000)
    a = dc_training.augment(waves, train, RATE, torch.Generator().manual_seed(1))
    b = dc_training.augment(waves, train, RATE, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == waves.shape
    zeros = (a == 0).sum(dim=1)
    assert (zeros <= 160).all() and zeros.sum() > 0 and set(a.unique().tolist()) <= {0.0, 1.0}
    noisy = dc_training.augment(waves, dc_training.TrainConfig(), RATE, torch.Generator().manual_seed(2))
    assert noisy.abs().max() <= 1.0


def test_augment_speed_resamples_about_the_centre():
    ramp = torch.arange(11.0)[None, :] / 20
    fixed = dict(max_shift_s=0.0, gain_db=(0.0, 0.0), noise_max=0.0)
    same = dc_training.augment(ramp, dc_training.TrainConfig(speed=(1.0, 1.0), **fixed), RATE, torch.Generator())
    torch.testing.assert_close(same, ramp)
    fast = dc_training.augment(ramp, dc_training.TrainConfig(speed=(2.0, 2.0), **fixed), RATE, torch.Generator()) * 20
    torch.testing.assert_close(fast, torch.tensor([[0.0, 0, 0, 1, 3, 5, 7, 9, 0, 0, 0]]))
    slow = dc_training.augment(ramp, dc_training.TrainConfig(speed=(0.5, 0.5), **fixed), RATE, torch.Generator()) * 20
    torch.testing.assert_close(slow, 2.5 + 0.5 * torch.arange(11.0)[None, :])


def test_spec_masks_cover_bands_and_spans_with_the_clip_mean():
    mel = torch.randn(4, 16, 30)
    train = dc_training.TrainConfig(freq_mask=3, time_masks=2, time_mask=5)
    out = dc_training.mask_log_mel(mel, train, torch.Generator().manual_seed(0))
    changed = out != mel
    assert changed.any() and out.shape == mel.shape
    for i in range(4):
        assert torch.allclose(out[i][changed[i]], mel[i].mean().expand(int(changed[i].sum())))
        rows, cols = changed[i].all(dim=1).sum(), changed[i].all(dim=0).sum()
        assert rows <= 3 and cols <= 10
    none = dc_training.TrainConfig(freq_mask=0, time_masks=0)
    assert torch.equal(dc_training.mask_log_mel(mel, none, torch.Generator()), mel)


def test_trained_classifier_recognises_a_held_out_voice(trained):
    folder, report = trained
    assert report["test_accuracy"] >= 0.9, report
    assert report["clips"]["test"] == 24 and report["voices"] == {"train": 3, "valid": 3, "test": 1}
    assert set(report["test_accuracy_per_voice"]) == {"tone_b"}
    saved = json.loads((folder / "training.json").read_text())
    assert saved["test_accuracy"] == report["test_accuracy"] and saved["train"]["test_voices"] == ["tone_b"]


def test_saved_classifier_reloads_to_the_same_outputs(trained, tones):
    folder, _ = trained
    model, report = dc.load_classifier(folder)
    waves = dc_training.load_clips(tones, ("test",)).waves()
    lp1, f1 = dc.classify(model, waves, batch_size=5)
    lp2, f2 = dc.classify(dc.load_classifier(folder)[0], waves)
    assert lp1.shape == (len(waves), 3) and f1.shape == (len(waves), TINY["channels"])
    np.testing.assert_allclose(lp1, lp2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(f1, f2, rtol=1e-6, atol=1e-6)
    assert math.isclose(np.exp(lp1).sum(axis=1).mean(), 1.0, rel_tol=1e-9)


def test_a_classifier_that_outputs_the_uniform_distribution_gives_is_one(trained, tones):
    model, _ = dc.load_classifier(trained[0])
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    log_probs, _ = dc.classify(model, dc_training.load_clips(tones, ("train",)).waves())
    assert inception_score(log_probs) == pytest.approx(1.0, abs=1e-9)
    assert modified_inception_score(log_probs) == pytest.approx(1.0, abs=1e-9)


def test_classify_and_load_name_what_is_wrong(trained, tmp_path):
    model, _ = dc.load_classifier(trained[0])
    with pytest.raises(ValueError, match=f"waves must be \\(n, {CLIP}\\)"):
        dc.classify(model, np.zeros((2, CLIP + 1)))
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        dc.load_classifier(tmp_path)


# ----------------------------------------------------------------------------------------------------------
# mamba-bio-audio evaluate-audio


def run_cli(*args: str) -> int:
    from mamba_bio_audio.pipelines.cli import main

    return main(["evaluate-audio", *map(str, args)])


def write_clips(folder, waves, rate=RATE, subtype="FLOAT"):
    folder.mkdir(parents=True, exist_ok=True)
    for i, wave in enumerate(waves):
        sf.write(str(folder / f"clip_{i:02d}.wav"), wave, rate, subtype=subtype)
    return folder


def test_real_test_clips_given_as_samples_score_like_the_real_row(trained, tones, tmp_path):
    samples = write_clips(tmp_path / "samples", dc_training.load_clips(tones, ("test",)).waves())
    out = tmp_path / "metrics.json"
    assert run_cli("--real", tones, "--classifier", trained[0], "--samples", samples, "--out", out) == 0
    result = json.loads(out.read_text())
    real, generated = result["rows"]["real_test"], result["rows"]["generated"]
    for name in ("fid", "is", "mis", "am", "confidence"):
        assert generated[name] == pytest.approx(real[name], rel=1e-9, abs=1e-9), name
    assert result["reference_clips"] == len(dc_training.load_clips(tones, ("train",)))
    classifier = result["classifier"]
    assert classifier["test_accuracy_held_out_voices"] == trained[1]["test_accuracy"]
    assert classifier["trained_on_this_dataset"]
    test = dc_training.load_clips(tones, ("test",))
    log_probs, _ = dc.classify(dc.load_classifier(trained[0])[0], test.waves())
    right = int((log_probs.argmax(axis=1) == test.labels).sum())  # this classifier, the labelled test clips
    assert classifier["accuracy_on_real_test_split"] == pytest.approx(right / len(test))


def test_clips_drawn_from_a_checkpoint_are_scored_and_saved(trained, tones, tmp_path):
    from mamba_bio_audio.models.sashimi import SashimiLM
    from mamba_bio_audio.models.sashimi_config import SashimiConfig

    torch.manual_seed(0)
    tiny = SashimiConfig.from_preset("sc09_small", d_model=8, n_layers=1, pool=[2, 2])
    SashimiLM(tiny).save_pretrained(tmp_path / "lm")
    out = tmp_path / "metrics.json"
    assert run_cli("--real", tones, "--classifier", trained[0], "--checkpoint", tmp_path / "lm", "--n", 3,
                   "--batch-size", 3, "--save-samples", tmp_path / "drawn", "--out", out) == 0
    result = json.loads(out.read_text())
    drawn = result["generated"]
    assert result["rows"]["generated"]["n"] == 3
    assert drawn["samples_per_s"] == pytest.approx(3 * CLIP / drawn["sampling_s"])
    assert [c["clip"] for c in result["generated"]["per_clip"]] == ["clip_000.wav", "clip_001.wav", "clip_002.wav"]
    saved = sorted((tmp_path / "drawn").glob("*.wav"))
    assert len(saved) == 3 and sf.info(str(saved[0])).frames == CLIP and sf.info(str(saved[0])).samplerate == RATE


def test_train_classifier_through_the_command(tones, tmp_path):
    out = tmp_path / "metrics.json"
    assert run_cli("--real", tones, "--classifier", tmp_path / "clf", "--train-classifier", "--epochs", 1,
                   "--test-voices", "tone_c", "--out", out) == 0
    result = json.loads(out.read_text())
    assert result["classifier"]["test_voices"] == ["tone_c"] and "generated" not in result["rows"]
    _, saved = dc.load_classifier(tmp_path / "clf")  # the classifier the command trained, loaded back
    assert saved["train"]["test_voices"] == ["tone_c"] and saved["test_accuracy"] == result["classifier"][
        "test_accuracy_held_out_voices"]


@pytest.mark.parametrize("case, message", [
    ("missing", "no such folder of samples"),
    ("rate", "clip_01.wav: sample rate 8000 Hz; the classifier takes 16000 Hz"),
    ("length", f"clip_01.wav: {CLIP + 1} samples"),
    ("stereo", "clip_01.wav: 2 channels"),
    ("text", "clip_01.wav: not a WAV file"),
    ("one", "holds 1 .wav files"),
])
def test_bad_samples_are_named(trained, tones, tmp_path, capsys, case, message):
    folder = tmp_path / "samples"
    good = np.zeros((2, CLIP), np.float32)
    if case != "missing":
        write_clips(folder, good[:1] if case == "one" else good)
    bad = folder / "clip_01.wav"
    if case == "rate":
        sf.write(str(bad), good[0], 8000)
    elif case == "length":
        sf.write(str(bad), np.zeros(CLIP + 1, np.float32), RATE)
    elif case == "stereo":
        sf.write(str(bad), np.zeros((CLIP, 2), np.float32), RATE)
    elif case == "text":
        bad.write_text("not audio")
    assert run_cli("--real", tones, "--classifier", trained[0], "--samples", folder, "--out", tmp_path / "m.json") == 2
    assert message in capsys.readouterr().err


def test_missing_classifier_and_dataset_are_named(tones, tmp_path, capsys):
    assert run_cli("--real", tones, "--classifier", tmp_path / "none", "--out", tmp_path / "m.json") == 2
    assert "none holds no digit classifier: config.json is missing" in capsys.readouterr().err
    assert run_cli("--real", tmp_path / "nodata", "--out", tmp_path / "m.json") == 2
    assert "manifest.json is missing" in capsys.readouterr().err


def test_a_model_that_is_not_an_audio_lm_is_named(trained, tones, tmp_path, capsys):
    from mamba_bio_audio import MambaConfig, MambaLMHeadModel

    MambaLMHeadModel(MambaConfig(d_model=8, n_layer=1, vocab_size=16)).save_pretrained(tmp_path / "dna")
    assert run_cli("--real", tones, "--classifier", trained[0], "--checkpoint", tmp_path / "dna", "--n", 2,
                   "--out", tmp_path / "m.json") == 2
    assert "vocab_size 16 is no 8-bit mu-law audio model" in capsys.readouterr().err
