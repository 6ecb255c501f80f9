"""``mamba-bio-audio embed MODEL FASTA [--bed BED] --out OUT.{npy,safetensors,parquet}``: embeddings of DNA
sequences from any DNA model folder (:mod:`mamba_bio_audio.embedding`).

Every FASTA record, or every region of the BED, is one item: per sequence (``--per sequence``, the default) the
mean of its hidden states over its bases (RC-invariant for RCPS Caduceus models), per base (``--per base``)
the hidden states themselves; from the model's output (after the final norm) or the residual stream after block
``--layer K``. Causal Mamba models run each sequence in chunks of ``--chunk-size`` bases with the state carried
over, so a chromosome embeds in the memory of one chunk.

Outputs, rows in input order:

* ``.npy``: (items, D) float32 per sequence; (items, L, D) per base (regions of one length only).
* ``.safetensors``: per sequence the tensor ``embeddings`` (items, D); per base one tensor ``embedding.<i>``
  (L_i, D) per item; the metadata holds ``names``, ``chroms``, ``starts``, ``ends`` as JSON lists.
* ``.parquet``: per sequence one row per item (``name``, ``chrom``, ``start``, ``end``, ``embedding``: a
  fixed-size list of D float32); per base one row per base (``name``, ``chrom``, ``position``, ``embedding``).

The items are sharded over ``--devices`` processes (and ``--num-nodes``) through Lightning's predict loop
(:mod:`mamba_bio_audio.pipelines.genomics.sharded`); every finished batch is kept in ``<out>.work/``, so a
killed run started again with the same inputs continues where it stopped. The output is written under a
temporary name and renamed: a partial file is never left under its final name.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mamba_bio_audio.pipelines.commands.shared import add_progress_argument, cli_spellings

FORMATS = (".npy", ".safetensors", ".parquet")
PARQUET_ROWS = 4096  # rows per Parquet row group


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="model folder: ours (Mamba LM or classifier, Caduceus), a mamba_ssm "
                                                 "or transformers Mamba folder, a Hugging Face Caduceus folder; or "
                                                 "a Lightning .ckpt of our tasks")
    parser.add_argument("fasta", type=Path, help="FASTA (plain, BGZF or gzip); without --bed every record is one item")
    parser.add_argument("--bed", type=Path, default=None,
                        help="regions to embed: chrom start end [name] (0-based, half-open), one item each")
    parser.add_argument("--out", type=Path, required=True, help="output file: .npy, .safetensors or .parquet")
    parser.add_argument("--per", choices=("sequence", "base"), default="sequence",
                        help="one vector per item (mean over its bases) or one per base (default: %(default)s)")
    parser.add_argument("--layer", type=int, default=None,
                        help="the residual stream after block K (0-based); default: the output after the final norm")
    parser.add_argument("--batch-size", type=int, default=16, help="items per batch (default: %(default)s)")
    parser.add_argument("--chunk-size", type=int, default=32768,
                        help="causal Mamba models read each sequence in chunks of this many bases, the state "
                             "carried over: memory of one chunk (default: %(default)s)")
    parser.add_argument("--devices", type=int, default=1, help="processes (CPU) or GPUs per node (default: 1)")
    parser.add_argument("--num-nodes", type=int, default=1, help="nodes (default: 1)")
    parser.add_argument("--accelerator", choices=("cpu", "gpu", "auto"), default="auto",
                        help="Lightning accelerator (default: %(default)s)")
    parser.add_argument("--unknown", choices=("error", "unk", "n"), default="error",
                        help="characters other than bases and IUPAC codes: an error with file, line and column, "
                             "[UNK] or N (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    parser.add_argument("--restart", action="store_true",
                        help="discard the partial results a run with other inputs left in <out>.work/")
    add_progress_argument(parser)


def check_output(out: Path, inputs: list[Path | None], force: bool) -> None:
    """ValueError before any work: an unknown suffix, an existing output without ``force``, an output that is
    one of the inputs or lies inside an input folder (the model's own files), or a folder."""
    if out.suffix not in FORMATS:
        raise ValueError(f"--out {out}: the suffix decides the format: one of {', '.join(FORMATS)}")
    for path in inputs:
        if path is not None and path.exists() and out.exists():
            target, source = out.resolve(), path.resolve()
            if target == source or source in target.parents:
                raise ValueError(f"--out {out} is one of the inputs or lies inside {path}; choose another output file")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name ending in {', '.join(FORMATS)}")
    if out.exists() and not force:
        raise ValueError(f"--out {out} exists; --force replaces it (nothing was changed)")


def fingerprint(args, model: Path) -> dict:
    """What the embeddings depend on: the model's files, the FASTA and BED (path, size, time), --per, --layer,
    --unknown."""
    from mamba_bio_audio.pipelines.genomics.common import fingerprint_files

    return {"files": fingerprint_files(*(p for p in (model, args.fasta, args.bed) if p is not None)),
            "per": args.per, "layer": args.layer, "unknown": args.unknown}


def embed_batch(model, source, regions, per: str, layer: int | None, chunk_size: int | None) -> list[dict]:
    """One record ``{"embedding": float32 array}`` per region: (D,) per sequence, (L, D) per base. Sequences
    of a causal model share a right-padded batch; a bidirectional model's are batched by length."""
    import torch

    from mamba_bio_audio.embedding import embed_sequences, embed_tokens, is_unidirectional, padded_batch
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    device = next(model.parameters()).device
    causal = is_unidirectional(model)
    pad = getattr(model.config, "pad_token_id", None)
    pad = NucleotideTokenizer.pad_token_id if pad is None else pad
    ids = [torch.from_numpy(source.tokens(r.chrom, r.start, r.end).astype(np.int64)) for r in regions]
    groups: dict[int, list[int]] = {}
    for i, seq in enumerate(ids):  # per base, or a bidirectional model: one batch per length
        key = 0 if per == "sequence" and causal else seq.numel()
        groups.setdefault(key, []).append(i)
    records: list[dict | None] = [None] * len(regions)
    for members in groups.values():
        batch, mask = padded_batch([ids[i] for i in members], pad, causal)
        batch, mask = batch.to(device), mask.to(device)
        if per == "sequence":
            out = embed_sequences(model, batch, mask, layer=layer, chunk_size=chunk_size)
        else:
            out = embed_tokens(model, batch, layer=layer, chunk_size=chunk_size)
        for row, i in enumerate(members):
            records[i] = {"embedding": out[row].float().cpu().numpy()}
    return records


def writer(fmt: str, regions, per: str):
    """The merge writer of ``fmt`` (see the module docstring): ``write(records, tmp_path)``."""

    def meta() -> dict[str, str]:
        return {"names": json.dumps([r.name for r in regions]), "chroms": json.dumps([r.chrom for r in regions]),
                "starts": json.dumps([r.start for r in regions]), "ends": json.dumps([r.end for r in regions]),
                "per": per}

    def write_npy(records, tmp: Path) -> None:
        first = None
        for i, record in enumerate(records):
            emb = record["embedding"]
            if first is None:
                first = np.lib.format.open_memmap(str(tmp), mode="w+", dtype=np.float32,
                                                  shape=(len(regions), *emb.shape))
            first[i] = emb
        first.flush()
        del first

    def write_safetensors(records, tmp: Path) -> None:
        from safetensors.numpy import save_file

        embs = [np.ascontiguousarray(r["embedding"], dtype=np.float32) for r in records]
        tensors = {"embeddings": np.stack(embs)} if per == "sequence" else {
            f"embedding.{i}": e for i, e in enumerate(embs)}
        save_file(tensors, str(tmp), metadata=meta())

    def write_parquet(records, tmp: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        parquet = None
        try:
            for region, record in zip(regions, records):
                emb = np.ascontiguousarray(record["embedding"], dtype=np.float32)
                if per == "sequence":
                    columns = {"name": [region.name], "chrom": [region.chrom], "start": [region.start],
                               "end": [region.end]}
                    emb = emb[None]
                else:
                    columns = {"name": [region.name] * len(emb), "chrom": [region.chrom] * len(emb),
                               "position": np.arange(region.start, region.end, dtype=np.int64)}
                flat = pa.array(emb.reshape(-1), type=pa.float32())
                table = pa.table({**columns, "embedding": pa.FixedSizeListArray.from_arrays(flat, emb.shape[-1])})
                if parquet is None:
                    parquet = pq.ParquetWriter(str(tmp), table.schema)
                parquet.write_table(table, row_group_size=PARQUET_ROWS)
        finally:
            if parquet is not None:
                parquet.close()

    return {".npy": write_npy, ".safetensors": write_safetensors, ".parquet": write_parquet}[fmt]


def run(args) -> int:
    from mamba_bio_audio.embedding import backbone_of, check_dna_model
    from mamba_bio_audio.pipelines.training.nets import load_net
    from mamba_bio_audio.pipelines.genomics.regions import SequenceSource, fasta_regions, read_regions
    from mamba_bio_audio.pipelines.genomics.sharded import predict_sharded
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    if args.batch_size < 1 or args.chunk_size < 1:
        raise ValueError(f"--batch-size and --chunk-size must be >= 1; got {args.batch_size} and {args.chunk_size}")
    out = Path(args.out)
    check_output(out, [args.fasta, args.bed, args.model], args.force)
    if not Path(args.model).exists():
        raise FileNotFoundError(f"model folder or checkpoint not found: {args.model}")
    model = load_net(args.model)
    check_dna_model(model, f"the model in {args.model}")
    backbone = backbone_of(model)
    if args.layer is not None and not 0 <= args.layer < len(backbone.layers):
        raise ValueError(f"--layer {args.layer}: the model has blocks 0..{len(backbone.layers) - 1}")
    chunk_size = args.chunk_size if getattr(backbone, "passes_state", False) else None
    model.requires_grad_(False)
    with cli_spellings(), SequenceSource(args.fasta, NucleotideTokenizer(unknown=args.unknown)) as source:
        regions = fasta_regions(source.lengths) if args.bed is None else read_regions(args.bed, source.lengths,
                                                                                      args.fasta)
        if args.per == "base" and out.suffix == ".npy" and len({r.length for r in regions}) > 1:
            raise ValueError(f"--per base into .npy needs items of one length (got {min(r.length for r in regions)}"
                             f" to {max(r.length for r in regions)} bases); write .safetensors or .parquet")
        for region in regions:  # bad characters are refused before any work (tokenizing costs little beside a model)
            source.tokens(region.chrom, region.start, region.end)
        out.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        summary = predict_sharded(
            regions, lambda batch: embed_batch(model, source, batch, args.per, args.layer, chunk_size),
            batch_size=args.batch_size, outputs={out: writer(out.suffix, regions, args.per)},
            fingerprint=fingerprint(args, Path(args.model)), model=model, devices=args.devices,
            num_nodes=args.num_nodes, accelerator=args.accelerator, progress_label="embed",
            progress=not args.quiet, restart=args.restart)
    if summary is None:  # another rank: rank 0 reports
        return 0
    seconds = time.perf_counter() - started
    resumed = f", {summary.resumed} of them resumed from {out.name}.work" if summary.resumed else ""
    what = ("sequence" if args.bed is None else "region") + ("s" if summary.items != 1 else "")
    print(f"embedded {summary.items} {what} per {args.per}"
          f"{resumed} in {seconds:.1f} s ({summary.computed / max(seconds, 1e-9):.1f} per second on "
          f"{summary.world_size} process{'es' if summary.world_size > 1 else ''}) → {out}")
    return 0
