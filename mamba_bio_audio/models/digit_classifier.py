"""The digit classifier behind the SC09 metrics: log-mel features and a res8-style residual CNN (Tang & Lin 2018,
"Deep residual learning for small-footprint keyword spotting"), its inference and its model folder. Its training
(data, voice split, augmentation, loop) is :mod:`mamba_bio_audio.pipelines.training.digit_classifier`.

* Features: ``torch.stft`` (Hann window of ``n_fft`` samples, hop ``hop``, centred) → power → a triangular HTK
  mel filterbank built in numpy → ``log(mel + log_floor)``: (batch, n_mels, frames) float32.
* Network: BatchNorm of the features; a 3 x 3 convolution to ``channels`` maps, ReLU and average pooling
  ``pool``; ``n_layers`` further 3 x 3 convolutions, each ReLU then BatchNorm, with an identity shortcut around
  every pair; the mean over frequency and time is the penultimate feature (batch, channels) that FID uses; a
  linear layer gives the logits (batch, classes).
* Folder: ``model.safetensors``, ``config.json`` (:class:`ClassifierConfig`) and ``training.json`` (what the
  training reports: the split, the accuracies, per-voice test accuracy, times, the dataset manifest's sha256),
  each written atomically.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mamba_bio_audio.atomic import atomic_path, write_text_atomic
from mamba_bio_audio.folder_kinds import FolderKind, check_folder, layout_kind

__all__ = ["CLASSIFIER_FOLDER", "ClassifierConfig", "DigitClassifier", "LogMel", "accuracy", "classify",
           "load_classifier", "mel_filterbank", "save_classifier"]

CONFIG_FILE, WEIGHTS_FILE, TRAINING_FILE = "config.json", "model.safetensors", "training.json"


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
