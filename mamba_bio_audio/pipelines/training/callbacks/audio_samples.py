"""Audio sample logging: every few validation epochs, draw clips from the model and write WAV + PNG."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl

from mamba_bio_audio.audio_generation import sample_audio
from mamba_bio_audio.pipelines.reporting.audio_out import plot_clip, write_wav


class AudioSamples(pl.Callback):
    """After every ``every_n_validations``-th validation, ``n`` clips of ``seconds`` (seeded, so epochs compare)
    go to ``<run>/samples/step_XXXXXX_i.{wav,png}`` (waveform + spectrogram), on global rank 0 only. The count
    of validations travels with the checkpoint, so a resumed run draws at the steps an uninterrupted one would."""

    def __init__(self, every_n_validations: int = 1, n: int = 1, seconds: float = 1.0, sample_rate: int = 16000,
                 seed: int = 0):
        self.every_n_validations, self.n, self.seconds = every_n_validations, n, seconds
        self._validations = 0
        self.sample_rate, self.seed = sample_rate, seed

    def state_dict(self) -> dict:
        """``{"validations": int}``: plain data, so a resumed run keeps the cadence (checkpoints load with
        ``torch.load(weights_only=True)``)."""
        return {"validations": self._validations}

    def load_state_dict(self, state_dict: dict) -> None:
        self._validations = int(state_dict.get("validations", 0))

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        self._validations += 1
        if self._validations % self.every_n_validations:
            return
        folder = Path(trainer.default_root_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        clips = sample_audio(pl_module.net, self.n, max(1, int(self.seconds * self.sample_rate)), seed=self.seed)
        for i, pcm in enumerate(clips.waveforms()):
            stem = folder / f"step_{trainer.global_step:06d}_{i}"
            write_wav(stem.with_suffix(".wav"), pcm, self.sample_rate)
            plot_clip(stem.with_suffix(".png"), pcm, self.sample_rate,
                      f"step {trainer.global_step}, log-likelihood {clips.log_likelihood[i].item():.0f} nats")
