"""Length extrapolation: next-token loss per position over sequences longer than the training length.

:func:`loss_per_position` gives the loss at every position of long sequences (Mamba models may run in chunks
with state passing, so the length is bounded by time, not memory); :func:`position_table` summarises it over
position ranges relative to the training length T (``[0, T/2)``, ``[T/2, T)``, ``[T, 2T)``, ``[2T, 4T)``, ...)
with the ratio to the loss in ``[T/2, T)``, the end of the trained range; :func:`write_report` writes the
table (JSON) and a plot of the smoothed loss against position (PNG).

Command line, for model folders written by ``save_pretrained`` (Mamba or Transformer++) and a FASTA file::

    python -m mamba_bio_audio.pipelines.evaluation.length_extrapolation MODEL_DIR [MODEL_DIR ...] --fasta FILE \\
        --train-length 1024 --length 16384 [--windows 8] [--chunk-size 4096] [--out-dir DIR]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from mamba_bio_audio.models import chunked
from mamba_bio_audio.targets import IGNORE_INDEX, counted_mask, counted_targets
from mamba_bio_audio.pipelines.reporting import sweep_report

__all__ = ["format_table", "loss_per_position", "position_table", "write_report"]


def _token_losses(model, hidden_states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = model.lm_head(hidden_states).float()
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")


@torch.no_grad()
def loss_per_position(model, input_ids: torch.Tensor, chunk_size: int | None = None,
                      pad_token_id: int | None = None) -> torch.Tensor:
    """input_ids (batch, L) int64 → (L - 1,) fp32: the cross entropy (nats) of predicting token t + 1 at
    position t, averaged over the rows whose target counts (:mod:`mamba_bio_audio.targets`). With
    ``chunk_size`` a Mamba model
    runs in chunks with state passing (same values, memory of one chunk)."""
    inputs, labels = input_ids[:, :-1], counted_targets(input_ids[:, 1:], pad_token_id)
    if chunk_size is not None and getattr(model.backbone, "passes_state", False):
        pieces, _ = chunked.run_chunks(model, inputs, chunk_size, _token_losses, (labels,))
        losses = torch.cat(pieces, dim=1)
    else:
        losses = _token_losses(model, model.backbone(inputs), labels)
    counted = counted_mask(labels).float()
    return (losses * counted).sum(0) / counted.sum(0).clamp(min=1)


def _edges(length: int, train_length: int) -> list[int]:
    edges = [0, train_length // 2, train_length]
    while edges[-1] < length:
        edges.append(min(2 * edges[-1], length))
    return [e for i, e in enumerate(edges) if i == 0 or e > edges[i - 1]]


def position_table(losses: torch.Tensor, train_length: int) -> list[dict]:
    """Mean loss over position ranges of ``losses`` (L,): rows with ``start``, ``end`` (exclusive),
    ``loss_nats``, ``bits_per_token`` and ``vs_trained_end``, the ratio to the loss in [T/2, T)."""
    if not 2 <= train_length:
        raise ValueError(f"train_length must be >= 2; got {train_length}")
    edges = _edges(losses.numel(), train_length)
    reference = losses[train_length // 2: train_length].mean().item()
    rows = []
    for start, end in zip(edges[:-1], edges[1:]):
        mean = losses[start:end].mean().item()
        rows.append({"start": start, "end": end, "loss_nats": round(mean, 4),
                     "bits_per_token": round(mean / math.log(2), 4), "vs_trained_end": round(mean / reference, 4)})
    return rows


def format_table(tables: dict[str, list[dict]], train_length: int) -> str:
    """Markdown table: one row per position range, bits per token (and the ratio to [T/2, T)) per model."""
    names = list(tables)
    lines = [f"| positions (T = {train_length}) | " + " | ".join(f"{n} bits/token (x vs [T/2, T))" for n in names)
             + " |", "|---" * (len(names) + 1) + "|"]
    for i, row in enumerate(tables[names[0]]):
        cells = [f"{tables[n][i]['bits_per_token']:.4f} (x{tables[n][i]['vs_trained_end']:.3f})" for n in names]
        lines.append(f"| [{row['start']}, {row['end']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _smoothed(losses: torch.Tensor, points: int = 200) -> tuple[list[int], list[float]]:
    """Means over log-spaced position windows: (window centres, mean losses)."""
    length = losses.numel()
    edges = sorted({int(round(length ** (i / points))) for i in range(points + 1)} | {0, length})
    xs, ys = [], []
    for start, end in zip(edges[:-1], edges[1:]):
        xs.append((start + end) // 2 + 1)
        ys.append(losses[start:end].mean().item() / math.log(2))
    return xs, ys


def write_report(curves: dict[str, torch.Tensor], train_length: int, out_dir: Path,
                 details: dict | None = None) -> tuple[Path, Path]:
    """Write ``length_extrapolation_<stamp>.json`` (per-model tables, ``details``) and the plot of the
    smoothed bits per token against position of every curve (L,). Returns (json, png)."""
    tables = {name: position_table(losses, train_length) for name, losses in curves.items()}
    panel = {"title": "next-token loss vs position", "xlabel": "position (tokens)", "ylabel": "bits per token",
             "series": {name: _smoothed(losses) for name, losses in curves.items()}, "logx": True,
             "markers": False, "vlines": {f"training length {train_length}": train_length}}
    report = {"train_length": train_length, "length": max(c.numel() for c in curves.values()) + 1,
              **(details or {}), "tables": tables, "markdown": format_table(tables, train_length)}
    return sweep_report.write("length_extrapolation", report, out_dir, [panel])


def _windows(fasta: Path, length: int, count: int, seed: int) -> torch.Tensor:
    """(count, length) DNA token ids from seeded random starts in the records of ``fasta`` long enough."""
    import numpy as np

    from mamba_bio_audio.data_prep.formats.fasta import read_fasta
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    tokenizer = NucleotideTokenizer()
    records = [np.asarray(tokenizer.encode(r.sequence)) for r in read_fasta(fasta) if len(r.sequence) >= length]
    if not records:
        raise ValueError(f"no record of {fasta} holds {length} bases")
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(count):
        ids = records[int(torch.randint(len(records), (1,), generator=generator))]
        start = int(torch.randint(ids.size - length + 1, (1,), generator=generator))
        rows.append(torch.as_tensor(ids[start:start + length], dtype=torch.long))
    return torch.stack(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamba_bio_audio.pipelines.evaluation.length_extrapolation",
                                     description="loss per position beyond the training length")
    parser.add_argument("models", nargs="+", type=Path, help="model folders (save_pretrained)")
    parser.add_argument("--fasta", type=Path, required=True, help="sequences to evaluate on")
    parser.add_argument("--train-length", type=int, required=True, help="the models' training length T")
    parser.add_argument("--length", type=int, required=True, help="evaluation length (tokens)")
    parser.add_argument("--windows", type=int, default=8, help="sequences averaged (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=None, help="run Mamba models in chunks of this length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.length <= args.train_length or args.train_length < 2 or args.windows < 1:
        parser.error("--length must exceed --train-length (>= 2) and --windows be >= 1")
    ids = _windows(args.fasta, args.length + 1, args.windows, args.seed)
    curves = {}
    from mamba_bio_audio.models.factory import load_pretrained

    for folder in args.models:
        model = load_pretrained(folder, head_type="causal_lm")
        curves[folder.name] = loss_per_position(model, ids, args.chunk_size, model.config.pad_token_id)
    details = {"fasta": str(args.fasta), "windows": args.windows, "seed": args.seed}
    json_path, png_path = write_report(curves, args.train_length, args.out_dir, details)
    print(format_table({n: position_table(c, args.train_length) for n, c in curves.items()}, args.train_length))
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
