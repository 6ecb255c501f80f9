"""The figures the quickstart report puts beside its models: count-based baselines on the very windows the
models are scored on (unigram, order-3 and the best order-k Markov bits per base, a k-mer species classifier,
the mu-law unigram), the sample figures of real piano (with a pitch-clarity figure), and the metrics table's
values. Token ids come from each dataset's tokenizer and sizes from the composed configs, so another dataset
or window length needs no edit here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.evaluation.baselines import KmerSpeciesBaseline, MarkovBaseline, best_markov
from mamba_bio_audio.targets import counted_mask
from mamba_bio_audio.tokenizers import tokenizer_from_config
from mamba_bio_audio.torch_files import load_torch_file


def dna_baselines(data: Path, seq_len: int, eval_items: int, seed: int, max_order: int = 10) -> dict:
    """Bits per base of the validation windows the LM is scored on under count-based models of the training
    split: unigram (``order0``), order-3 Markov (``order3``) and the best order-k chain for k <= ``max_order``
    (``best``: its bits, ``best_order``, ``best_alpha``; chosen on 8 stretches of the training split that the
    counts did not see). Counts come from 40 stretches of up to 100 kb (4 Mb) drawn from the training split."""
    from mamba_bio_audio.data_prep.datasets.dna_windows import DnaWindowDataset
    from mamba_bio_audio.pipelines.training.datamodules import evenly_spaced

    dataset = PreparedDataset(data / "hg_small")
    tokenizer = tokenizer_from_config(dataset.manifest["tokenizer"])
    windows = evenly_spaced(DnaWindowDataset(data / "hg_small", "valid", seq_len, "mamba"), eval_items)
    targets = np.concatenate([windows[i][1].numpy() for i in range(len(windows))])
    targets = targets[counted_mask(torch.as_tensor(targets), tokenizer.pad_token_id).numpy()]
    train = dataset.split("train").tokens
    chunk = min(100_000, len(train) // 48)
    starts = np.random.default_rng(seed).integers(0, len(train) - chunk + 1, 48)
    alphabet = tokenizer.encode("ACGTN")

    def stretches(picked) -> np.ndarray:
        joined = np.concatenate([np.asarray(train[s:s + chunk]) for s in picked]).astype(np.int64)
        return joined[np.isin(joined, alphabet)]

    fit, select = stretches(starts[:40]), stretches(starts[40:])
    out = {f"order{k}": MarkovBaseline(order=k).fit(fit).bits_per_base(targets) for k in (0, 3)}
    model, choice = best_markov(fit, select, orders=range(0, max_order + 1))
    out.update(best=model.bits_per_base(targets), best_order=choice["order"], best_alpha=choice["alpha"])
    return out


def species_windows(data: Path, dataset: str, split: str, seq_len: int, items: int, seed: int,
                    max_n_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(windows (items, seq_len) token ids, labels (items,)) of a species dataset's split, drawn as
    ``SpeciesDataModule`` draws them (evaluation splits with ``seed + 1``: pass the run's seed + 1)."""
    from mamba_bio_audio.data_prep.datasets.species_windows import SpeciesWindowDataset

    ds = SpeciesWindowDataset(data / dataset, split, seq_len, items, seed=seed, max_n_fraction=max_n_fraction)
    pairs = [ds[i] for i in range(items)]
    return np.stack([x.numpy() for x, _ in pairs]), np.array([int(y) for _, y in pairs])


def species_baseline(data: Path, seq_len: int, eval_items: int, seed: int, train_items: int = 8192,
                     dataset: str = "species5", max_n_fraction: float = 1.0) -> dict:
    """Test accuracy of the k-mer logistic regression (``KmerSpeciesBaseline``, k <= 4) on the test windows the
    classifier is scored on (``SpeciesDataModule``: ``eval_items`` drawn with ``seed + 1``), fitted on
    ``train_items`` training windows; with its training accuracy, which shows how much it merely memorised."""
    train_x, train_y = species_windows(data, dataset, "train", seq_len, train_items, seed, max_n_fraction)
    test_x, test_y = species_windows(data, dataset, "test", seq_len, eval_items, seed + 1, max_n_fraction)
    model = KmerSpeciesBaseline(k_max=4).fit(train_x, train_y)
    return {"train_acc": model.accuracy(train_x, train_y), "test_acc": model.accuracy(test_x, test_y),
            "train_items": train_items, "test_items": eval_items}


def audio_unigram_bits(data: Path) -> float:
    """Bits per sample of the piano test split under the training split's mu-law class frequencies (add-one)."""
    ds = PreparedDataset(data / "piano")
    classes = tokenizer_from_config(ds.manifest["tokenizer"]).vocab_size
    counts = np.bincount(np.asarray(ds.split("train").tokens), minlength=classes) + 1.0
    test = np.asarray(ds.split("test").tokens)
    return float(-np.log2(counts / counts.sum())[test].mean())


def real_audio_stats(data: Path, seconds: float, excerpts: int = 8) -> dict:
    """``clip_stats`` and :func:`pitch_clarity` of ``excerpts`` evenly spaced ``seconds``-long stretches of the
    piano test split (decoded mu-law), medians: what the samples' figures look like on real audio."""
    from mamba_bio_audio.audio_generation import to_pcm16
    from mamba_bio_audio.pipelines.reporting.audio_out import clip_stats

    ds = PreparedDataset(data / "piano")
    rate = int(ds.manifest["audio"]["rate"])
    tokens = np.asarray(ds.split("test").tokens)
    length = min(int(seconds * rate), len(tokens))
    starts = np.linspace(0, len(tokens) - length, excerpts).astype(np.int64)
    stats = []
    for s in starts:
        pcm = to_pcm16(tokens[s:s + length])
        stats.append({**clip_stats(pcm, rate), "pitch_clarity": pitch_clarity(pcm, rate)})
    return {key: float(np.nanmedian([st[key] for st in stats])) for key in stats[0]}


def pitch_clarity(pcm: np.ndarray, sample_rate: int, frame_s: float = 0.064, low_hz: float = 40.0,
                  high_hz: float = 2000.0) -> float:
    """How periodic a clip is: the median, over 64 ms frames with sound in them, of the frame's highest
    normalised autocorrelation at a lag between 1/``high_hz`` and 1/``low_hz`` seconds (a pitch period).
    Near 1 for a held note, near 0 for noise; NaN for a silent clip."""
    x = np.asarray(pcm, dtype=np.float64) / 32768.0
    frame = int(frame_s * sample_rate)
    lo, hi = max(1, int(sample_rate / high_hz)), min(frame // 2, int(sample_rate / low_hz))
    frames = x[: x.size // frame * frame].reshape(-1, frame)
    frames = frames - frames.mean(axis=1, keepdims=True)
    frames = frames[np.sqrt((frames ** 2).mean(axis=1)) > 1e-3]  # skip near-silent frames (-60 dBFS)
    if not len(frames) or hi <= lo:
        return float("nan")
    spectrum = np.fft.rfft(frames, n=2 * frame, axis=1)
    acf = np.fft.irfft(np.abs(spectrum) ** 2, axis=1)[:, :frame]
    energy = np.cumsum(frames[:, ::-1] ** 2, axis=1)[:, ::-1]  # energy of x[t:] for each t
    lags = np.arange(lo, hi)
    # each lag is normalised by the energies of the two overlapping parts, x[:frame - lag] and x[lag:]
    first = np.cumsum(frames ** 2, axis=1)  # energy of x[:t + 1]
    norm = np.sqrt(first[:, frame - 1 - lags] * energy[:, lags]) + 1e-12
    return float(np.median((acf[:, lags] / norm).max(axis=1)))


def optimizer_steps(result) -> int:
    return int(load_torch_file(result.last_checkpoint)["global_step"])


def collect(dna, species, audio, baselines, audio_unigram: float, clips, dna_samples, tokens, dna_cfg) -> dict:
    ln2, nan = np.log(2.0), float("nan")
    return {
        "data_tokens": tokens,
        "dna_layers_width": [dna_cfg["n_layer"], dna_cfg["d_model"]],
        "steps": {name: optimizer_steps(r) for name, r in (("dna", dna), ("species", species), ("audio", audio))},
        "dna_val_bits_per_base": dna.metrics.get("val/loss_best", nan) / ln2,
        "dna_val_ppl": float(np.exp(dna.metrics.get("val/loss_best", nan))),
        "dna_test_ppl": dna.metrics["test/ppl"],
        "dna_unigram_bits_per_base": baselines["order0"],
        "dna_unigram_ppl": float(2 ** baselines["order0"]),
        "dna_markov3_ppl": float(2 ** baselines["order3"]),
        "dna_markov_best_bits_per_base": baselines["best"],
        "dna_markov_best_ppl": float(2 ** baselines["best"]),
        "dna_markov_best_order": baselines["best_order"],
        "species_test_acc": species.metrics["test/acc"],
        "species_test_macro_f1": species.metrics["test/f1"],
        # the linear probe the head started from (task.head_init=linear_probe): its accuracy on its training
        # windows and its seconds; NaN when the head started from random weights
        "species_probe_train_acc": species.metrics.get("probe/train_acc", nan),
        "species_probe_seconds": species.metrics.get("probe/seconds", nan),
        "species_kmer_baseline": baselines["species_kmer"],
        "species_confusion": species.confusion,
        "species_classes": species.class_names,
        "audio_val_bits_per_sample": audio.metrics.get("val/loss_best", nan) / ln2,
        "audio_test_bits_per_sample": audio.metrics["test/bpt"],
        "audio_unigram_bits_per_sample": audio_unigram,
        "audio_samples": clips,
        "real_audio_stats": baselines["real_audio"],
        "dna_samples": dna_samples,
        "runs": {"dna": str(dna.output_dir), "species": str(species.output_dir), "audio": str(audio.output_dir)},
    }
