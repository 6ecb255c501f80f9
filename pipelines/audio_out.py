"""Audio outputs: 16-bit WAV files and a waveform + spectrogram PNG per clip."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mamba_bio_audio.atomic import atomic_path


def write_wav(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    """pcm (n,) int16 → a mono PCM_16 WAV file, written atomically."""
    import soundfile as sf

    with atomic_path(Path(path)) as tmp:
        sf.write(str(tmp), np.asarray(pcm, dtype=np.int16), sample_rate, subtype="PCM_16", format="WAV")


def clip_stats(pcm: np.ndarray) -> dict:
    """RMS (dBFS) and fraction of samples at full scale of an int16 clip: is it audible, is it clipped."""
    x = np.asarray(pcm, dtype=np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(x**2))) if x.size else 0.0
    return {"rms_dbfs": 20 * np.log10(max(rms, 1e-10)),
            "clipped_fraction": float(np.mean(np.abs(pcm.astype(np.int32)) >= 32767)) if x.size else 0.0}


def plot_clip(path: Path, pcm: np.ndarray, sample_rate: int, title: str) -> None:
    """Waveform (top) and log-magnitude spectrogram (bottom) of an int16 clip, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.asarray(pcm, dtype=np.float32) / 32768.0
    t = np.arange(x.size) / sample_rate
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 4.8), dpi=110, sharex=True)
    top.plot(t, x, lw=0.4)
    top.set_ylim(-1.0, 1.0)
    top.set_ylabel("amplitude")
    top.set_title(title)
    bottom.specgram(x, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma", scale="dB")
    bottom.set_xlabel("time (s)")
    bottom.set_ylabel("frequency (Hz)")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
