"""Audio outputs: 16-bit WAV files and a waveform + spectrogram PNG per clip."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png

from mamba_bio_audio.atomic import atomic_path


def write_wav(path: Path, pcm: np.ndarray, sample_rate: int) -> None:
    """pcm (n,) int16 → a mono PCM_16 WAV file, written atomically."""
    import soundfile as sf

    with atomic_path(Path(path)) as tmp:
        sf.write(str(tmp), np.asarray(pcm, dtype=np.int16), sample_rate, subtype="PCM_16", format="WAV")


def clip_stats(pcm: np.ndarray, sample_rate: int) -> dict:
    """What a listener would notice in an int16 clip, as numbers:

    * ``rms_dbfs``: RMS about the mean, dB full scale (a constant offset is silence, not sound);
    * ``dc_offset``: the mean, full scale 1.0;
    * ``clipped_fraction``: samples at full scale;
    * ``longest_flat_s``: the longest run of one repeated sample value, in seconds (a sampler stuck on one
      token gives a long run);
    * ``spectral_flatness``: median over 32 ms frames (with sound in them) of the power spectrum's geometric over
      arithmetic mean: near 1 for white noise, near 0 for tones.
    """
    pcm = np.asarray(pcm)
    if pcm.size == 0:
        return {"rms_dbfs": -200.0, "dc_offset": 0.0, "clipped_fraction": 0.0, "longest_flat_s": 0.0,
                "spectral_flatness": float("nan")}
    x = pcm.astype(np.float64) / 32768.0
    dc = float(x.mean())
    rms = float(np.sqrt(np.mean((x - dc) ** 2)))
    changes = np.flatnonzero(np.diff(pcm) != 0)
    runs = np.diff(np.concatenate([[-1], changes, [pcm.size - 1]]))
    return {"rms_dbfs": float(20 * np.log10(max(rms, 1e-10))), "dc_offset": dc,
            "clipped_fraction": float(np.mean(np.abs(pcm.astype(np.int32)) >= 32767)),
            "longest_flat_s": float(runs.max() / sample_rate), "spectral_flatness": _spectral_flatness(x, sample_rate)}


def _spectral_flatness(x: np.ndarray, sample_rate: int) -> float:
    frame = max(16, int(0.032 * sample_rate))
    frames = x[: x.size // frame * frame].reshape(-1, frame)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames[np.sqrt((frames**2).mean(axis=1)) > 1e-4]  # skip silent frames (-80 dBFS)
    if not len(frames):
        return float("nan")
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1))[:, 1:] ** 2 + 1e-20
    return float(np.median(np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1)))


def plot_clip(path: Path, pcm: np.ndarray, sample_rate: int, title: str) -> None:
    """Waveform (top) and log-magnitude spectrogram (bottom) of an int16 clip, as PNG."""
    plt = pyplot()

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
    save_png(fig, path)
