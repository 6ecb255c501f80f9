"""``mamba-bio-audio sample checkpoint=<export folder or .ckpt> [KEY=VALUE ...]`` (configs/sample.yaml).

Any generative model (Mamba or Transformer++ LM, SaShiMi) samples through the library's one sampler. Audio
models (256 mu-law classes) give ``n`` WAV clips with a waveform + spectrogram PNG each; DNA models give a
FASTA file of ``n`` sequences drawn over A, C, G, T. Every sample's exact log-likelihood under the model (nats,
temperature 1) goes to ``samples.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from mamba_bio_audio.atomic import write_text_atomic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="e.g. checkpoint=logs/piano_sashimi_cpu/runs/<run>/export n=4 seconds=2 temperature=0.9")
    parser.add_argument("--cfg", action="store_true", help="print the composed config and exit")


def _audio_prefix(path: str, seconds: float, sample_rate: int) -> torch.Tensor:
    """The first ``seconds`` of a sound file as mu-law classes (P,) int64 at ``sample_rate``."""
    from mamba_bio_audio.data_prep.formats.audio_io import load_mono
    from mamba_bio_audio.tokenizers import mu_law_encode

    audio = load_mono(path, sample_rate).samples[: max(1, int(seconds * sample_rate))]
    return torch.as_tensor(np.asarray(mu_law_encode(audio, normalize="minmax")), dtype=torch.long)


def _dna_prefix(prefix: str) -> torch.Tensor:
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    text = prefix
    if Path(prefix).is_file():
        from mamba_bio_audio.data_prep.formats.fasta import read_fasta
        text = read_fasta(prefix)[0].sequence
    return torch.as_tensor(np.asarray(NucleotideTokenizer().encode(text)), dtype=torch.long)


def sample_audio_files(net, out: Path, n: int, seconds: float, sample_rate: int, prefix=None, **knobs) -> list[dict]:
    """Draw ``n`` clips and write ``out/clip_XX.{wav,png}``; returns one record per clip (files, nats,
    bits per sample, and :func:`.audio_out.clip_stats` of the drawn part)."""
    from mamba_bio_audio.audio_generation import sample_audio
    from mamba_bio_audio.pipelines.reporting.audio_out import clip_stats, plot_clip, write_wav

    length = max(1, int(round(seconds * sample_rate)))
    clips = sample_audio(net, n, length, prefix=prefix, **knobs)
    records = []
    for i, pcm in enumerate(clips.waveforms()):
        nats = clips.log_likelihood[i].item()
        wav, png = out / f"clip_{i:02d}.wav", out / f"clip_{i:02d}.png"
        write_wav(wav, pcm, sample_rate)
        plot_clip(png, pcm, sample_rate, f"clip {i}: {-nats / length / np.log(2):.3f} bits/sample")
        records.append({"wav": wav.name, "png": png.name, "log_likelihood_nats": nats,
                        "bits_per_sample": -nats / length / np.log(2), **clip_stats(pcm[clips.prefix_length:], sample_rate)})
    return records


def sample_dna_files(net, out: Path, n: int, length: int, prefix=None, seed: int = 0, **knobs) -> list[dict]:
    """Draw ``n`` sequences of ``length`` bases over A, C, G, T continuing ``prefix`` (P,) int64 ids (without one:
    a first base drawn uniformly, seeded) and write ``out/samples.fa``; returns one record per sequence."""
    from mamba_bio_audio.generation import sample_sequences
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    tokenizer = NucleotideTokenizer()
    bases = torch.as_tensor(tokenizer.encode("ACGT"), dtype=torch.long)
    if prefix is None:
        prompt = bases[torch.randint(0, 4, (n, 1), generator=torch.Generator().manual_seed(seed))]
    else:
        prompt = torch.as_tensor(prefix, dtype=torch.long).reshape(1, -1).expand(n, -1)
    drawn = sample_sequences(net, prompt, length, allowed_tokens=bases.tolist(), seed=seed, **knobs)
    lines, records = [], []
    for i, row in enumerate(drawn.tokens):
        nats = drawn.log_likelihood[i].item()
        lines += [f">sample_{i} log_likelihood_nats={nats:.3f} prefix_length={drawn.prefix_length}",
                  tokenizer.decode(row.tolist())]
        records.append({"name": f"sample_{i}", "log_likelihood_nats": nats,
                        "bits_per_base": -nats / length / np.log(2)})
    write_text_atomic(out / "samples.fa", "\n".join(lines) + "\n")
    return records


def run(args) -> int:
    from omegaconf import OmegaConf

    from mamba_bio_audio.folder_kinds import check_folder
    from mamba_bio_audio.pipelines.commands.hydra_compose import compose
    from mamba_bio_audio.pipelines.commands.output_folders import SAMPLE_FOLDER
    from mamba_bio_audio.pipelines.training.nets import load_net

    cfg = compose("sample", list(args.overrides))
    if args.cfg:
        print(OmegaConf.to_yaml(cfg))
        return 0
    out = Path(cfg.out)
    check_folder(out, SAMPLE_FOLDER, [cfg.prefix if cfg.prefix and Path(str(cfg.prefix)).exists() else None])
    net = load_net(cfg.checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    knobs = dict(temperature=float(cfg.temperature), top_k=int(cfg.top_k), top_p=float(cfg.top_p), seed=int(cfg.seed))
    if net.config.vocab_size == 256:
        prefix = None if cfg.prefix is None else _audio_prefix(cfg.prefix, cfg.prefix_seconds, cfg.sample_rate)
        records = sample_audio_files(net, out, int(cfg.n), float(cfg.seconds), int(cfg.sample_rate), prefix=prefix,
                                     batch_size=cfg.batch_size, **knobs)
    else:
        prefix = None if cfg.prefix is None else _dna_prefix(str(cfg.prefix))
        records = sample_dna_files(net, out, int(cfg.n), int(cfg.length), prefix=prefix, **knobs)
    write_text_atomic(out / "samples.json", json.dumps({"config": OmegaConf.to_container(cfg), "samples": records},
                                                       indent=2) + "\n")
    for record in records:
        print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
    print(f"wrote {len(records)} samples to {out}")
    return 0
