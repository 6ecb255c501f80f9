"""The digit classifier behind the SC09 metrics: log-mel features and a res8-style residual CNN (Tang & Lin 2018,
"Deep residual learning for small-footprint keyword spotting"), trained on a prepared clips dataset with
held-out voices for its test.

* Features: ``torch.stft`` (Hann window of ``n_fft`` samples, hop ``hop``, centred) → power → a triangular HTK
  mel filterbank built in numpy → ``log(mel + log_floor)``: (batch, n_mels, frames) float32.
* Network: BatchNorm of the features; a 3 x 3 convolution to ``channels`` maps, ReLU and average pooling
  ``pool``; ``n_layers`` further 3 x 3 convolutions, each ReLU then BatchNorm, with an identity shortcut around
  every pair; the mean over frequency and time is the penultimate feature (batch, channels) that FID uses; a
  linear layer gives the logits (batch, classes).
* Split by voice: a clip's voice comes from its file name in the manifest's ``files`` (the digits example names
  clips ``<word>/<index>_<engine>_<voice>.wav``; :func:`voice_of` returns ``<engine>_<voice>``). Clips whose
  voice matches one of ``test_voices`` (fnmatch patterns) are the test set, whatever their dataset split; of the
  other clips the dataset's ``train`` split trains and its ``valid`` and ``test`` splits pick the epoch kept.
* Training: AdamW with a one-cycle cosine schedule, seeded; each batch is augmented on the waveform (speed,
  time shift, gain, white noise: :func:`augment`) and on the log-mel features (SpecAugment masks:
  :func:`mask_log_mel`), every draw from one seeded generator.
* Folder (``<dataset>/classifier`` by default): ``model.safetensors``, ``config.json``
  (:class:`ClassifierConfig`) and ``training.json`` (the split, the accuracies, per-voice test accuracy, times,
  the dataset manifest's sha256), each written atomically.
"""
from __future__ import annotations

import fnmatch
import json
import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mamba_bio_audio.atomic import atomic_path, write_text_atomic
from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST, PreparedDataset, file_sha256
from mamba_bio_audio.folder_kinds import FolderKind, check_folder, layout_kind
from mamba_bio_audio.tokenizers import MU_LAW_START_TOKEN, mu_law_decode

CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE = "config.json", "model.safetensors", "training.json"
DEFAULT_FOLDER = "classifier"
# one recorded voice of each engine of the digits example, and two espeak-ng variants in every accent
DEFAULT_TEST_VOICES = ("flite_rms", "festival_ked_diphone", "espeak-ng_*-m3", "espeak-ng_*-f2")
_VOICE = re.compile(r"^\d+_(?P<voice>.+)\.[A-Za-z0-9]+$")


@dataclass
class ClassifierConfig:
    """Everything that defines the classifier's function; ``config.json`` holds it."""

    labels: list[str]
    sample_rate: int = 16000
    clip_samples: int = 16000
    n_fft: int = 480            # 30 ms
    hop: int = 160              # 10 ms
    n_mels: int = 40
    f_min: float = 20.0
    f_max: float = 7600.0
    log_floor: float = 1e-6
    channels: int = 32          # res8: 45, res8-narrow: 19; 32 trains in minutes on 2 CPU cores
    n_layers: int = 6
    pool: tuple[int, int] = (4, 3)

    def __post_init__(self):
        self.pool = tuple(int(p) for p in self.pool)
        if len(self.labels) < 2:
            raise ValueError(f"a classifier needs at least 2 labels; got {self.labels}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= f_min < f_max <= sample_rate / 2; got {self.f_min}, {self.f_max}")
        if self.n_layers % 2:
            raise ValueError(f"n_layers must be even (shortcuts span pairs); got {self.n_layers}")

    def to_dict(self) -> dict:
        return {**asdict(self), "pool": list(self.pool)}

    @classmethod
    def from_dict(cls, values: dict) -> "ClassifierConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown classifier config fields {unknown}")
        return cls(**values)


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


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) float32 triangular filters, evenly spaced on the HTK mel scale."""
    mel = lambda f: 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)
    hz = lambda m: 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(f_min), mel(f_max), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.clip(np.minimum(rising, falling), 0.0, None).astype(np.float32)


class LogMel(nn.Module):
    """waveforms (batch, samples) float32 in [-1, 1] → log-mel (batch, n_mels, samples // hop + 1) float32."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.n_fft, self.hop, self.floor = config.n_fft, config.hop, config.log_floor
        self.register_buffer("window", torch.hann_window(config.n_fft), persistent=False)
        fb = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max)
        self.register_buffer("filters", torch.from_numpy(fb), persistent=False)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(waves, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        return torch.log(torch.matmul(self.filters, spec.abs().square()) + self.floor)


class DigitClassifier(nn.Module):
    """``forward(waves (batch, clip_samples) float32) -> (logits (batch, classes), features (batch, channels))``,
    float32 both; ``features`` is the penultimate layer."""

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.features = LogMel(config)
        self.input_norm = nn.BatchNorm2d(1)
        self.stem = nn.Conv2d(1, c, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(config.pool)
        self.convs = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1, bias=False) for _ in range(config.n_layers))
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(config.n_layers))
        self.head = nn.Linear(c, len(config.labels))

    def forward(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_log_mel(self.features(waves))

    def from_log_mel(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network after the features: mel (batch, n_mels, frames) float32 → (logits, features)."""
        x = self.input_norm(mel.unsqueeze(1))
        x = shortcut = self.pool(F.relu(self.stem(x)))
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            y = F.relu(conv(x))
            if i % 2:
                y = shortcut = y + shortcut
            x = norm(y)
        pooled = x.mean(dim=(2, 3))
        return self.head(pooled), pooled


# ----------------------------------------------------------------------------------------------------------
# data


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


# ----------------------------------------------------------------------------------------------------------
# inference


@torch.no_grad()
def classify(model: DigitClassifier, waves, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """waves (n, clip_samples) float (numpy or torch) → (log-probabilities (n, classes), features (n, channels)),
    float64 numpy both, with the model in eval mode."""
    model.eval()
    waves = torch.as_tensor(np.asarray(waves, dtype=np.float32))
    expected = model.config.clip_samples
    if waves.dim() != 2 or waves.shape[1] != expected:
        raise ValueError(f"waves must be (n, {expected}); got {tuple(waves.shape)}")
    log_probs, features = [], []
    for start in range(0, waves.shape[0], batch_size):
        logits, feats = model(waves[start : start + batch_size])
        log_probs.append(torch.log_softmax(logits.double(), dim=1).numpy())
        features.append(feats.double().numpy())
    return np.concatenate(log_probs), np.concatenate(features)


def accuracy(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float((log_probs.argmax(axis=1) == labels).mean())


# ----------------------------------------------------------------------------------------------------------
# training


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


# ----------------------------------------------------------------------------------------------------------
# folder


def _classifier_config(path: Path) -> bool:
    try:
        ClassifierConfig.from_dict(json.loads(path.read_text()))
    except (OSError, UnicodeDecodeError, TypeError, ValueError, KeyError):
        return False
    return True


_CLASSIFIER_LAYOUT = layout_kind("a digit classifier folder",
                                 files=(CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE, ".*.tmp"))  # .tmp: a cut write


def _classifier_foreign(path: Path) -> str | None:
    why = _CLASSIFIER_LAYOUT.foreign(path)
    if why is None and (path / CONFIG_FILE).exists() and not _classifier_config(path / CONFIG_FILE):
        why = "its config.json is not that of a digit classifier"
    if why is None and not (path / CONFIG_FILE).exists() and (path / WEIGHTS_FILE).exists():
        why = f"it holds a {WEIGHTS_FILE} without a digit classifier's {CONFIG_FILE}"
    return why


CLASSIFIER_FOLDER = FolderKind(f"a digit classifier folder ({CONFIG_FILE}, {WEIGHTS_FILE}, {TRAINING_FILE})",
                               _classifier_foreign)
"""What ``save_classifier`` writes into: a new or empty folder, or one holding only a classifier's files."""


def save_classifier(model: DigitClassifier, folder: str | Path, report: dict) -> Path:
    """Write ``config.json``, ``model.safetensors`` and ``training.json`` into ``folder``, each atomically;
    FolderRefused (a ValueError) before writing for a folder that is not :data:`CLASSIFIER_FOLDER`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    check_folder(folder, CLASSIFIER_FOLDER)
    folder.mkdir(parents=True, exist_ok=True)
    # training.json goes first and comes back last: a save cut short leaves a folder that load_classifier
    # refuses (training.json is missing), never a new config beside the previous weights
    (folder / TRAINING_FILE).unlink(missing_ok=True)
    write_text_atomic(folder / CONFIG_FILE, json.dumps(model.config.to_dict(), indent=2) + "\n")
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    write_text_atomic(folder / TRAINING_FILE, json.dumps(report, indent=1) + "\n")
    return folder


def load_classifier(folder: str | Path) -> tuple[DigitClassifier, dict]:
    """(model in eval mode, ``training.json`` content) from a classifier folder; FileNotFoundError or
    ValueError naming the file."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder} holds no digit classifier: {name} is missing (train one with "
                                    "`mamba-bio-audio evaluate-audio --real <dataset> --train-classifier`)")
    try:
        config = ClassifierConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
        report = json.loads((folder / TRAINING_FILE).read_text())
    except (json.JSONDecodeError, TypeError, ValueError) as err:
        raise ValueError(f"{folder / CONFIG_FILE} or {TRAINING_FILE}: {err}") from err
    model = DigitClassifier(config)
    state = load_file(str(folder / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder / WEIGHTS_FILE}: missing keys {missing}, unexpected keys {unexpected}")
    return model.eval(), report
