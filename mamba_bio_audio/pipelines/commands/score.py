"""``mamba-bio-audio score MODEL FASTA --out DIR``: per-base log-likelihoods and entropies (nats) of every FASTA
record under a DNA language model (:mod:`mamba_bio_audio.scoring.per_base`), as ``DIR/loglik.bedGraph`` and
``DIR/entropy.bedGraph`` (``--bigwig``: also ``loglik.bw`` and ``entropy.bw``), and ``DIR/records.tsv``: per record
its bases, the bases scored, the mean log-likelihood, the perplexity exp(-mean) and the mean entropy.

Causal Mamba LMs run each record in windows of ``--window`` bases carrying the state, so a chromosome takes the
memory of one window and equals one pass; masked LMs (Caduceus) give the masked marginal of every base in a
window of ``--window`` bases around it. Bases without a score are left out of the tracks: a causal model's first
base (no context) and every base that is not A, C, G or T. ``--rc-average``: the mean with the
reverse-complement strand's score of the same base. Records are sharded over ``--devices`` processes,
resumable from ``DIR.work``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mamba_bio_audio.pipelines.genomics.common import add_run_arguments

    parser.add_argument("model", help="model folder (ours, mamba_ssm's, a published Caduceus folder) or a .ckpt")
    parser.add_argument("fasta", help="FASTA (plain or BGZF; its .fai is built beside it if missing)")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or one score wrote)")
    parser.add_argument("--window", type=int, default=None,
                        help="bases per pass: causal models 65536 (memory, not the result, depends on it), masked "
                             "models 512 (the context of each base's masked marginal)")
    parser.add_argument("--bigwig", action="store_true", help="also write loglik.bw and entropy.bw")
    add_run_arguments(parser, "records per batch", 1)


def score_record(model, ids: np.ndarray, window: int, causal: bool, rc: bool) -> tuple[np.ndarray, np.ndarray]:
    """(log-likelihoods (L,), entropies (L,)) fp32 of ids (L,), NaN where there is no score."""
    from mamba_bio_audio.scoring import causal_scores, masked_scores, rc_average, reverse_complement_ids
    from mamba_bio_audio.tokenizers import BASE_IDS

    scorer = causal_scores if causal else masked_scores
    ll, entropy = scorer(model, ids, window)
    if rc:
        ll_rc, entropy_rc = scorer(model, reverse_complement_ids(ids), window)
        ll = rc_average(ll, ll_rc, per_base=True).astype(np.float32)
        entropy = rc_average(entropy, entropy_rc, per_base=True).astype(np.float32)
    bad = ~np.isin(ids, BASE_IDS)
    ll[bad], entropy[bad] = np.nan, np.nan
    return ll, entropy


def _bedgraph(field: str):
    def write(records, tmp: Path) -> None:
        from mamba_bio_audio.data_prep.formats.tracks import write_bedgraph_values

        with open(tmp, "w") as fh:
            for r in records:
                write_bedgraph_values(fh, r["name"], 0, r[field])
    return write


def _bigwig(field: str, lengths: dict[str, int]):
    def write(records, tmp: Path) -> None:
        from mamba_bio_audio.data_prep.formats.tracks import BigWigWriter

        with BigWigWriter(tmp, list(lengths.items())) as bw:
            for r in records:
                bw.add(r["name"], 0, r[field])
    return write


def _records_tsv(records, tmp: Path) -> None:
    from mamba_bio_audio.data_prep.formats.tables import write_table

    cols: dict[str, list] = {k: [] for k in ("name", "length", "scored", "mean_loglik", "perplexity",
                                             "mean_entropy")}
    for r in records:
        ll = r["loglik"]
        scored = int(np.isfinite(ll).sum())
        mean = float(np.nanmean(ll)) if scored else None
        for k, v in (("name", r["name"]), ("length", int(ll.shape[0])), ("scored", scored), ("mean_loglik", mean),
                     ("perplexity", None if mean is None else float(np.exp(-mean))),
                     ("mean_entropy", float(np.nanmean(r["entropy"])) if scored else None)):
            cols[k].append(v)
    write_table(cols, tmp, "tsv")


def run(args) -> int:
    from mamba_bio_audio.folder_kinds import check_folder
    from mamba_bio_audio.pipelines.genomics.common import (SCORE_FOLDER, ReferenceFasta, fingerprint_files,
                                                           load_dna_model)
    from mamba_bio_audio.pipelines.genomics.sharded import predict_sharded, work_dir_for
    from mamba_bio_audio.scoring import is_causal

    started = time.perf_counter()
    out = Path(args.out)
    check_folder(out, SCORE_FOLDER, [args.model, args.fasta])
    model = load_dna_model(args.model)
    causal = is_causal(model)
    window = args.window or (65536 if causal else 512)
    if window < 2:
        raise ValueError(f"--window must be at least 2 bases; got {window}")
    reference = ReferenceFasta(args.fasta)
    names = list(reference.lengths)

    def compute_batch(batch):
        records = []
        for name in batch:
            ids = np.asarray(reference.sequence(name)[0:reference.lengths[name]], dtype=np.int64)
            ll, entropy = score_record(model, ids, window, causal, args.rc_average)
            records.append({"name": name, "loglik": ll, "entropy": entropy})
        return records

    out.mkdir(parents=True, exist_ok=True)
    outputs = {out / "loglik.bedGraph": _bedgraph("loglik"), out / "entropy.bedGraph": _bedgraph("entropy"),
               out / "records.tsv": _records_tsv}
    if args.bigwig:
        outputs[out / "loglik.bw"] = _bigwig("loglik", reference.lengths)
        outputs[out / "entropy.bw"] = _bigwig("entropy", reference.lengths)
    fingerprint = {"command": "score", "files": fingerprint_files(args.model, args.fasta), "window": window,
                   "rc_average": args.rc_average}
    result = predict_sharded(names, compute_batch, batch_size=args.batch_size, outputs=outputs,
                             fingerprint=fingerprint, model=model, work_dir=work_dir_for(out),
                             devices=args.devices, num_nodes=args.num_nodes, accelerator=args.accelerator,
                             progress_label="score", progress=not args.quiet, restart=args.restart)
    if result is None:
        return 0
    bases = sum(reference.lengths.values())
    table = (out / "records.tsv").read_text().splitlines()[1:]
    scored = sum(int(line.split("\t")[2]) for line in table)
    print(f"score: {len(names)} records, {bases} bases ({bases - scored} without a score: first base or not ACGT) "
          f"in {result.seconds:.1f} s ({bases / max(result.seconds, 1e-9):.0f} bases/s on {result.world_size} "
          f"process(es); {result.resumed} records done by an earlier run)\n  -> {out}/loglik.bedGraph, "
          f"entropy.bedGraph, records.tsv" + (", loglik.bw, entropy.bw" if args.bigwig else "")
          + f"  [{time.perf_counter() - started:.1f} s]")
    return 0
