"""Training of the digit classifier (:mod:`mamba_bio_audio.models.digit_classifier`) on a prepared clips
dataset, with held-out voices for its test.

* Split by voice: a clip's voice comes from its file name in the manifest's ``files`` (the digits example names
  clips ``<word>/<index>_<engine>_<voice>.wav``; :func:`voice_of` returns ``<engine>_<voice>``). Clips whose
  voice matches one of ``test_voices`` (fnmatch patterns) are the test set, whatever their dataset split; of the
  other clips the dataset's ``train`` split trains and its ``valid`` and ``test`` splits pick the epoch kept.
* Training: AdamW with a one-cycle cosine schedule, seeded; each batch is augmented on the waveform (speed,
  time shift, gain, white noise: :func:`augment`) and on the log-mel features (SpecAugment masks:
  :func:`mask_log_mel`), every draw from one seeded generator.
* Output: the classifier's folder (``<dataset>/classifier`` by default), whose ``training.json`` records the
  split, the accuracies, per-voice test accuracy, times and the dataset manifest's sha256.
"""
from __future__ import annotations

import fnmatch
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST, PreparedDataset, file_sha256
from mamba_bio_audio.models.digit_classifier import (ClassifierConfig, DigitClassifier, accuracy, classify,
                                                     save_classifier)
from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN, mu_law_decode

DEFAULT_FOLDER = "classifier"
# one recorded voice of each engine of the digits example, and two espeak-ng variants in every accent
DEFAULT_TEST_VOICES = ("flite_rms", "festival_ked_diphone", "espeak-ng_*-m3", "espeak-ng_*-f2")
_VOICE = re.compile(r"^\d+_(?P<voice>.+)\.[A-Za-z0-9]+$")


@dataclass
class TrainConfig:
    """How the classifier is trained (recorded in ``training.json``)."""

    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0
    speed: tuple[float, float] = (0.9, 1.1)
    max_shift_s: float = 0.1
    gain_db: tuple[float, float] = (-20.0, 0.0)
    noise_max: float = 0.01
    freq_mask: int = 8          # SpecAugment: one band of up to this many mel bins ...
    time_masks: int = 2         # ... and this many spans of up to time_mask frames, set to the clip's mean
    time_mask: int = 10
    test_voices: tuple[str, ...] = DEFAULT_TEST_VOICES
    max_minutes: float | None = None   # stop after the epoch that passes this wall time
    eval_batch_size: int = 256


def voice_of(key: str) -> str:
    """``eight/00008_espeak-ng_en-us-nyc-m7.wav`` → ``espeak-ng_en-us-nyc-m7``; ValueError for other names."""
    match = _VOICE.match(Path(key).name)
    if not match:
        raise ValueError(f"{key}: cannot tell the voice from the file name (expected <index>_<voice>.<ext>, "
                         "as the digits example writes)")
    return match["voice"]


@dataclass
class Clips:
    """Clips of a prepared dataset: tokens (n, clip_samples) uint8 mu-law, padded with 128; labels (n,) int64;
    keys (n,) the source file of each clip (manifest ``files``); splits (n,) its dataset split."""

    tokens: np.ndarray
    labels: np.ndarray
    keys: list[str]
    splits: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> "Clips":
        picked = np.flatnonzero(mask)
        return Clips(self.tokens[picked], self.labels[picked], [self.keys[i] for i in picked],
                     [self.splits[i] for i in picked])

    def waves(self) -> np.ndarray:
        """(n, clip_samples) float32 in [-1, 1]: the mu-law decoding."""
        return mu_law_decode(self.tokens)


def dataset_info(dataset: str | Path) -> tuple[PreparedDataset, list[str], int, int]:
    """(dataset, labels, clip_samples, sample_rate) of a prepared 8-bit mu-law clips dataset, or ValueError."""
    ds = PreparedDataset(dataset)
    audio = ds.manifest.get("audio", {})
    if ds.kind != "audio" or audio.get("mode") != "clips":
        raise ValueError(f"{ds.path} is not a prepared audio dataset in clips mode")
    if ds.manifest.get("tokenizer", {}).get("quantization") != "mu-law":
        raise ValueError(f"{ds.path / MANIFEST}: tokenizer.quantization must be mu-law")
    return ds, list(audio["labels"]), int(audio["clip_samples"]), int(audio["rate"])


def load_clips(dataset: str | Path, splits: tuple[str, ...] | None = None) -> Clips:
    """Every clip of ``splits`` (default: all) of a prepared clips dataset, in split then record order."""
    ds, _, clip_samples, _ = dataset_info(dataset)
    keys = {(f["split"], f["record"]): f["key"] for f in ds.manifest.get("files", []) if "record" in f}
    tokens, labels, names, split_of = [], [], [], []
    for name in splits or tuple(ds.split_names):
        split = ds.split(name)
        block = np.full((len(split), clip_samples), MU_LAW_START_TOKEN, dtype=np.uint8)
        for i in range(len(split)):
            record = split.record(i)
            block[i, : record.shape[0]] = record
            if (name, i) not in keys:
                raise ValueError(f"{ds.path / MANIFEST}: files lists no source for record {i} of split {name!r}")
            names.append(keys[(name, i)])
        tokens.append(block)
        labels.append(split.records[:, 2] if len(split) else np.zeros(0, np.int64))
        split_of += [name] * len(split)
    return Clips(np.concatenate(tokens), np.concatenate(labels).astype(np.int64), names, split_of)


def is_test_voice(voice: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(voice, p) for p in patterns)


def voice_split(clips: Clips, test_voices: tuple[str, ...]) -> dict[str, Clips]:
    """{"train", "valid", "test"}: clips of held-out voices (any dataset split) are test; the others keep
    their dataset split (``train``; ``valid`` and the dataset's ``test`` both validate)."""
    held_out = np.array([is_test_voice(voice_of(k), test_voices) for k in clips.keys], dtype=bool)
    train = np.array([s == "train" for s in clips.splits]) & ~held_out
    parts = {"train": clips.subset(train), "valid": clips.subset(~train & ~held_out), "test": clips.subset(held_out)}
    for name, part in parts.items():
        if not len(part):
            raise ValueError(f"the voice split leaves no {name} clips (test voices {list(test_voices)})")
    return parts


def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, 1, generator=generator)


def augment(waves: torch.Tensor, train: TrainConfig, sample_rate: int, generator: torch.Generator) -> torch.Tensor:
    """waves (batch, samples) float32 → played at a speed drawn uniformly in ``speed`` about the clip's centre
    (linear interpolation: pitch and formants move together), shifted by up to ``max_shift_s``, both with zero
    fill, scaled by a gain drawn uniformly in ``gain_db`` and with white noise of a sigma drawn uniformly in
    [0, noise_max]; clipped to [-1, 1]."""
    n, length = waves.shape
    max_shift = int(train.max_shift_s * sample_rate)
    shift = torch.randint(-max_shift, max_shift + 1, (n, 1), generator=generator).float()
    centre = (length - 1) / 2
    position = (torch.arange(length)[None, :] - centre - shift) * _uniform(*train.speed, n, generator) + centre
    left = position.floor().long()
    frac = position - left
    padded = F.pad(waves, (1, 2))  # index -1 and length, length + 1 read zeros
    at = lambda i: padded.gather(1, (i + 1).clamp(0, length + 2))
    inside = (position >= -1) & (position <= length)
    waves = torch.where(inside, at(left) * (1 - frac) + at(left + 1) * frac, torch.zeros(()))
    low, high = train.gain_db
    gain = 10.0 ** (_uniform(low, high, n, generator) / 20.0)
    sigma = _uniform(0.0, train.noise_max, n, generator)
    noise = torch.randn(waves.shape, generator=generator) * sigma
    return (waves * gain + noise).clamp(-1.0, 1.0)


def mask_log_mel(mel: torch.Tensor, train: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """SpecAugment's masks on mel (batch, n_mels, frames) float32: one band of 0..freq_mask bins and
    ``time_masks`` spans of 0..time_mask frames per clip, set to the clip's mean; a new tensor."""
    n, bins, frames = mel.shape
    masked = torch.zeros_like(mel, dtype=torch.bool)
    for size, count, axis in ((bins, 1, 1), (frames, train.time_masks, 2)):
        widest = train.freq_mask if axis == 1 else train.time_mask
        for _ in range(count if widest else 0):
            width = torch.randint(0, widest + 1, (n, 1), generator=generator)
            start = (torch.rand(n, 1, generator=generator) * (size - width + 1)).long()
            span = torch.arange(size)[None, :]
            hit = (span >= start) & (span < start + width)
            masked |= hit[:, :, None] if axis == 1 else hit[:, None, :]
    return torch.where(masked, mel.mean(dim=(1, 2), keepdim=True), mel)


def _evaluate(model: DigitClassifier, clips: Clips, batch_size: int) -> tuple[float, np.ndarray]:
    log_probs, _ = classify(model, clips.waves(), batch_size)
    return accuracy(log_probs, clips.labels), log_probs


def per_voice_accuracy(clips: Clips, log_probs: np.ndarray) -> dict[str, dict]:
    """{voice: {"clips", "accuracy"}} for espeak-ng voices grouped by variant suffix, others by name."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(clips.keys):
        voice = voice_of(key)
        if voice.startswith("espeak-ng_"):
            voice = "espeak-ng_*-" + voice.rsplit("-", 1)[-1]
        groups.setdefault(voice, []).append(i)
    right = log_probs.argmax(axis=1) == clips.labels
    return {v: {"clips": len(idx), "accuracy": float(right[idx].mean())} for v, idx in sorted(groups.items())}


def train_classifier(dataset: str | Path, out: str | Path | None = None, train: TrainConfig | None = None,
                     config: ClassifierConfig | None = None, log=print) -> dict:
    """Train on ``dataset`` (a prepared clips dataset), save into ``out`` (default ``<dataset>/classifier``) and
    return the ``training.json`` content. ``config`` defaults to :class:`ClassifierConfig` with the dataset's
    labels, rate and clip length."""
    train = train or TrainConfig()
    ds, labels, clip_samples, rate = dataset_info(dataset)
    config = config or ClassifierConfig(labels=labels, sample_rate=rate, clip_samples=clip_samples,
                                        f_max=min(7600.0, rate / 2))
    if (config.labels, config.sample_rate, config.clip_samples) != (labels, rate, clip_samples):
        raise ValueError(f"config (labels, rate, clip) {config.labels, config.sample_rate, config.clip_samples} "
                         f"differs from the dataset's {labels, rate, clip_samples}")
    out = Path(out) if out is not None else ds.path / DEFAULT_FOLDER
    started = time.perf_counter()
    parts = voice_split(load_clips(ds.path), tuple(train.test_voices))
    torch.manual_seed(train.seed)
    model = DigitClassifier(config)
    generator = torch.Generator().manual_seed(train.seed)
    waves = torch.from_numpy(parts["train"].waves())
    targets = torch.from_numpy(parts["train"].labels)
    steps_per_epoch = math.ceil(len(targets) / train.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train.lr,
                                                   total_steps=train.epochs * steps_per_epoch,
                                                   pct_start=0.1, anneal_strategy="cos")
    history, best = [], (-1.0, None, -1)
    for epoch in range(train.epochs):
        model.train()
        order = torch.randperm(len(targets), generator=generator)
        total = 0.0
        for start in range(0, len(order), train.batch_size):
            idx = order[start : start + train.batch_size]
            mel = model.features(augment(waves[idx], train, rate, generator))
            logits, _ = model.from_log_mel(mask_log_mel(mel, train, generator))
            loss = F.cross_entropy(logits, targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        valid_acc, _ = _evaluate(model, parts["valid"], train.eval_batch_size)
        history.append({"epoch": epoch, "train_loss": total / len(targets), "valid_accuracy": valid_acc,
                        "minutes": (time.perf_counter() - started) / 60})
        log(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, valid accuracy {valid_acc:.4f}, "
            f"{history[-1]['minutes']:.1f} min")
        if valid_acc > best[0]:
            best = (valid_acc, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
        if train.max_minutes is not None and history[-1]["minutes"] >= train.max_minutes:
            break
    model.load_state_dict(best[1])
    test_acc, test_log_probs = _evaluate(model, parts["test"], train.eval_batch_size)
    report = {
        "dataset": str(ds.path.resolve()), "manifest_sha256": file_sha256(ds.path / MANIFEST),
        "train": asdict(train),
        "clips": {name: len(part) for name, part in parts.items()},
        "voices": {name: len({voice_of(k) for k in part.keys}) for name, part in parts.items()},
        "kept_epoch": best[2], "valid_accuracy": best[0], "test_accuracy": test_acc,
        "test_accuracy_per_voice": per_voice_accuracy(parts["test"], test_log_probs),
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history, "minutes": (time.perf_counter() - started) / 60, "threads": torch.get_num_threads(),
    }
    save_classifier(model, out, report)
    return report
