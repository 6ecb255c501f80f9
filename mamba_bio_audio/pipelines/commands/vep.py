"""``mamba-bio-audio vep MODEL VCF FASTA --out DIR``: every variant's log-likelihood ratio, alt vs ref, under a DNA
language model (:mod:`mamba_bio_audio.scoring.variants`), written as ``DIR/variants.vcf.gz`` (the input records,
all of them, with an INFO field, default ``LLR``), ``DIR/variants.tsv`` and ``DIR/variants.parquet`` (one row per
ALT allele with its status: ``scored`` or why it was skipped).

Multi-allelic records are split. Symbolic and structural alleles, indels with a masked model, variants too
close to a sequence end and variants whose window holds an N (or other non-ACGT base) are skipped and counted,
never scored. A REF that disagrees with the FASTA stops the command before any work (naming the VCF line and
both alleles) unless ``--skip-mismatch``; a chromosome the FASTA lacks stops it too. Runs on ``--devices``
processes through Lightning's predict loop, resumable from ``DIR.work`` (:mod:`..genomics.sharded`).
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

import numpy as np

SCORED = "scored"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mamba_bio_audio.pipelines.genomics.common import add_run_arguments

    parser.add_argument("model", help="model folder (ours, mamba_ssm's, a published Caduceus folder) or a .ckpt")
    parser.add_argument("vcf", help="VCF (plain or bgzipped) or BCF")
    parser.add_argument("fasta", help="reference FASTA (plain or BGZF; its .fai is built beside it if missing)")
    parser.add_argument("--out", required=True, help="output folder (new, empty, or one vep wrote)")
    parser.add_argument("--window", type=int, default=8192,
                        help="bases of reference around each variant (default: %(default)s)")
    parser.add_argument("--skip-mismatch", action="store_true",
                        help="skip (and count) variants whose REF disagrees with the FASTA instead of stopping")
    parser.add_argument("--info", default="LLR", help="INFO field of the scores in the VCF (default: %(default)s)")
    add_run_arguments(parser, "variants per batch", 64)


def plan(alleles, reference, window: int, causal: bool, rc: bool, skip_mismatch: bool) -> list[str]:
    """The status of every allele: ``scored`` or why not. Raises ValueError for a chromosome missing from the
    FASTA, and for a REF mismatch unless ``skip_mismatch``."""
    from mamba_bio_audio.scoring.variants import Variant, variant_problem, variant_window
    from mamba_bio_audio.tokenizers import BASE_IDS

    base_ids = np.array(BASE_IDS)
    statuses, clean = [], {}
    for a in alleles:
        if a.kind in ("symbolic", "structural"):
            statuses.append(f"skipped: {a.kind} allele")
            continue
        if a.chrom not in reference.lengths:
            shown = ", ".join(list(reference.lengths)[:5])
            raise ValueError(f"VCF line {a.line}: chromosome {a.chrom!r} is not in the FASTA {reference.path} "
                             f"(it has {shown}{' ...' if len(reference.lengths) > 5 else ''})")
        seq, length = reference.sequence(a.chrom), reference.lengths[a.chrom]
        fasta_ref = reference.tokenizer.decode(seq[a.pos:a.pos + len(a.ref)].tolist()) \
            if a.pos + len(a.ref) <= length else ""
        if fasta_ref != a.ref:
            if not skip_mismatch:
                raise ValueError(f"VCF line {a.line}: REF {a.ref} at {a.chrom}:{a.pos + 1} but the FASTA has "
                                 f"{fasta_ref or 'no such position'} there (wrong reference build?); "
                                 f"--skip-mismatch skips such variants")
            statuses.append("skipped: REF differs from the FASTA")
            continue
        why = variant_problem(Variant(a.pos, a.ref, a.alt), window, length, causal, rc)
        if why:
            statuses.append(f"skipped: {why}")
            continue
        key = (a.chrom, variant_window(a.pos, window, length))
        if key not in clean:
            start, end = key[1]
            clean[key] = bool(np.isin(seq[start:end], base_ids).all())
        statuses.append(SCORED if clean[key] else "skipped: N in the window")
    return statuses


def _vcf_writer(src: Path, info: str, alleles, statuses):
    def write(records, tmp: Path) -> None:
        from mamba_bio_audio.data_prep.formats.vcf import write_scored_vcf

        scores = {}
        it = iter(records)
        for a, status in zip(alleles, statuses):
            if status == SCORED:
                scores[(a.record, a.alt_index)] = float(next(it)["llr"])
        write_scored_vcf(src, tmp, scores, info_id=info, compressed=True)
    return write


def _table_writer(alleles, statuses, rc: bool, fmt: str):
    def write(records, tmp: Path) -> None:
        from mamba_bio_audio.data_prep.formats.tables import write_table

        names = ["llr", "llr_forward", "llr_reverse"] if rc else ["llr"]
        cols: dict[str, list] = {k: [] for k in ("chrom", "pos", "ref", "alt", "vcf_line", "status", *names)}
        it = iter(records)
        for a, status in zip(alleles, statuses):
            record = next(it) if status == SCORED else {}
            for k, v in (("chrom", a.chrom), ("pos", a.pos + 1), ("ref", a.ref), ("alt", a.alt),
                         ("vcf_line", a.line), ("status", status)):
                cols[k].append(v)
            for k in names:
                cols[k].append(float(record[k]) if k in record else None)
        write_table(cols, tmp, fmt)
    return write


def run(args) -> int:
    from mamba_bio_audio.data_prep.formats.vcf import read_alleles
    from mamba_bio_audio.folder_kinds import check_folder
    from mamba_bio_audio.pipelines.genomics.common import (VEP_FOLDER, ReferenceFasta, fingerprint_files,
                                                           load_dna_model)
    from mamba_bio_audio.pipelines.genomics.sharded import predict_sharded, work_dir_for
    from mamba_bio_audio.scoring import Variant, is_causal, score_variants

    started = time.perf_counter()
    out, vcf = Path(args.out), Path(args.vcf)
    if args.window < 4:
        raise ValueError(f"--window must be at least 4 bases; got {args.window}")
    check_folder(out, VEP_FOLDER, [args.model, args.vcf, args.fasta])
    model = load_dna_model(args.model)
    causal = is_causal(model)
    reference = ReferenceFasta(args.fasta)
    alleles = list(read_alleles(vcf))
    statuses = plan(alleles, reference, args.window, causal, args.rc_average, args.skip_mismatch)
    items = [a for a, s in zip(alleles, statuses) if s == SCORED]

    def compute_batch(batch):
        llr = np.full(len(batch), np.nan)
        fwd, rev = llr.copy(), llr.copy()
        for chrom in dict.fromkeys(a.chrom for a in batch):
            rows = [i for i, a in enumerate(batch) if a.chrom == chrom]
            scores = score_variants(model, reference.sequence(chrom), [Variant(batch[i].pos, batch[i].ref,
                                    batch[i].alt) for i in rows], args.window, length=reference.lengths[chrom],
                                    rc=args.rc_average, batch_size=args.batch_size)
            llr[rows], fwd[rows] = scores.llr, scores.forward
            if scores.reverse is not None:
                rev[rows] = scores.reverse
        return [{"llr": llr[i], "llr_forward": fwd[i], "llr_reverse": rev[i]} for i in range(len(batch))]

    out.mkdir(parents=True, exist_ok=True)
    outputs = {out / "variants.vcf.gz": _vcf_writer(vcf, args.info, alleles, statuses),
               out / "variants.tsv": _table_writer(alleles, statuses, args.rc_average, "tsv"),
               out / "variants.parquet": _table_writer(alleles, statuses, args.rc_average, "parquet")}
    fingerprint = {"command": "vep", "files": fingerprint_files(args.model, vcf, args.fasta), "window": args.window,
                   "rc_average": args.rc_average, "skip_mismatch": args.skip_mismatch}
    result = predict_sharded(items, compute_batch, batch_size=args.batch_size, outputs=outputs,
                             fingerprint=fingerprint, model=model, work_dir=work_dir_for(out),
                             devices=args.devices, num_nodes=args.num_nodes, accelerator=args.accelerator,
                             progress_label="vep", progress=not args.quiet, restart=args.restart)
    if result is None:  # another rank: rank 0 reports
        return 0
    skipped = Counter(s for s in statuses if s != SCORED)
    seconds = time.perf_counter() - started
    rate = result.computed / max(result.seconds, 1e-9)
    print(f"vep: {len(alleles)} alleles of {len({a.record for a in alleles})} VCF records: {len(items)} scored "
          f"({result.computed} now, {result.resumed} by an earlier run; {rate:.1f} variants/s on "
          f"{result.world_size} process(es)), {sum(skipped.values())} skipped"
          + "".join(f"\n  {n} {why.removeprefix('skipped: ')}" for why, n in sorted(skipped.items()))
          + f"\n  -> {out}/variants.vcf.gz (INFO {args.info}), variants.tsv, variants.parquet  [{seconds:.1f} s]")
    return 0
