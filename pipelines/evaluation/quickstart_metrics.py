"""The figures the quickstart report puts beside its models: count-based baselines on the very windows the
models are scored on (unigram and order-k Markov bits per base, a k-mer species classifier, the mu-law unigram),
the sample figures of real piano, and the metrics table's values. Token ids come from each dataset's
tokenizer and sizes from the composed configs, so another dataset or window length needs no edit here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mamba_bio_audio.data_prep.datasets.prepared import PreparedDataset
from mamba_bio_audio.pipelines.evaluation.baselines import KmerSpeciesBaseline, MarkovBaseline
from mamba_bio_audio.targets import counted_mask
from mamba_bio_audio.tokenizers import tokenizer_from_config


def dna_baselines(data: Path, seq_len: int, eval_items: int, seed: int) -> dict:
    """Unigram and order-3 Markov bits per base of the validation windows the LM is scored on, fitted on 40
    stretches of up to 100 kb (4 Mb) drawn from the training split."""
    from mamba_bio_audio.data_prep.datasets.dna_windows import DnaWindowDataset
    from mamba_bio_audio.pipelines.training.datamodules import evenly_spaced

    dataset = PreparedDataset(data / "hg_small")
    tokenizer = tokenizer_from_config(dataset.manifest["tokenizer"])
    windows = evenly_spaced(DnaWindowDataset(data / "hg_small", "valid", seq_len, "mamba"), eval_items)
    targets = np.concatenate([windows[i][1].numpy() for i in range(len(windows))])
    targets = targets[counted_mask(torch.as_tensor(targets), tokenizer.pad_token_id).numpy()]
    train = dataset.split("train").tokens
    chunk = min(100_000, len(train) // 40)
    starts = np.random.default_rng(seed).integers(0, len(train) - chunk + 1, 40)
    fit = np.concatenate([np.asarray(train[s:s + chunk]) for s in starts]).astype(np.int64)
    fit = fit[np.isin(fit, tokenizer.encode("ACGTN"))]
    return {f"order{k}": MarkovBaseline(order=k).fit(fit).bits_per_base(targets) for k in (0, 3)}


def species_baseline(data: Path, seq_len: int, eval_items: int, seed: int, train_items: int = 8192) -> dict:
    """Test accuracy of the k-mer logistic regression (``KmerSpeciesBaseline``, k <= 4) on the apes4 test
    windows the classifier is scored on (``SpeciesDataModule``: ``eval_items`` drawn with ``seed + 1``), fitted
    on ``train_items`` training windows; with its training accuracy, which shows how much it merely memorised."""
    from mamba_bio_audio.data_prep.datasets.species_windows import SpeciesWindowDataset

    def draw(split: str, items: int, draw_seed: int):
        ds = SpeciesWindowDataset(data / "apes4", split, seq_len, items, seed=draw_seed)
        pairs = [ds[i] for i in range(items)]
        return np.stack([x.numpy() for x, _ in pairs]), np.array([int(y) for _, y in pairs])

    train_x, train_y = draw("train", train_items, seed)
    test_x, test_y = draw("test", eval_items, seed + 1)
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
    """``clip_stats`` of ``excerpts`` evenly spaced ``seconds``-long stretches of the piano test split (decoded
    mu-law), medians: what the samples' figures look like on real audio."""
    from mamba_bio_audio.audio_generation import to_pcm16
    from mamba_bio_audio.pipelines.reporting.audio_out import clip_stats

    ds = PreparedDataset(data / "piano")
    rate = int(ds.manifest["audio"]["rate"])
    tokens = np.asarray(ds.split("test").tokens)
    length = min(int(seconds * rate), len(tokens))
    starts = np.linspace(0, len(tokens) - length, excerpts).astype(np.int64)
    stats = [clip_stats(to_pcm16(tokens[s:s + length]), rate) for s in starts]
    return {key: float(np.nanmedian([st[key] for st in stats])) for key in stats[0]}


def optimizer_steps(result) -> int:
    return int(torch.load(result.last_checkpoint, map_location="cpu", weights_only=False)["global_step"])


def collect(dna, apes, audio, baselines, audio_unigram: float, clips, dna_samples, tokens, dna_cfg) -> dict:
    ln2, nan = np.log(2.0), float("nan")
    return {
        "data_tokens": tokens,
        "dna_layers_width": [dna_cfg["n_layer"], dna_cfg["d_model"]],
        "steps": {name: optimizer_steps(r) for name, r in (("dna", dna), ("apes", apes), ("audio", audio))},
        "dna_val_bits_per_base": dna.metrics.get("val/loss_best", nan) / ln2,
        "dna_val_ppl": float(np.exp(dna.metrics.get("val/loss_best", nan))),
        "dna_test_ppl": dna.metrics["test/ppl"],
        "dna_unigram_bits_per_base": baselines["order0"],
        "dna_unigram_ppl": float(2 ** baselines["order0"]),
        "dna_markov3_ppl": float(2 ** baselines["order3"]),
        "apes_test_acc": apes.metrics["test/acc"],
        "apes_test_macro_f1": apes.metrics["test/f1"],
        "apes_kmer_baseline": baselines["apes_kmer"],
        "apes_confusion": apes.confusion,
        "apes_classes": apes.class_names,
        "audio_val_bits_per_sample": audio.metrics.get("val/loss_best", nan) / ln2,
        "audio_test_bits_per_sample": audio.metrics["test/bpt"],
        "audio_unigram_bits_per_sample": audio_unigram,
        "audio_samples": clips,
        "real_audio_stats": baselines["real_audio"],
        "dna_samples": dna_samples,
        "runs": {"dna": str(dna.output_dir), "apes": str(apes.output_dir), "audio": str(audio.output_dir)},
    }


