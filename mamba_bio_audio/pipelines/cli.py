"""The ``mamba-bio-audio`` console command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``; modules are
imported only when their subcommand runs, so ``--help`` and ``--version`` stay fast.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

import mamba_bio_audio
from mamba_bio_audio import openmp_spin, process_memory

# subcommand -> (module under mamba_bio_audio.pipelines, one-line help)
COMMANDS = {
    "prepare-dna": ("commands.prepare_dna", "FASTA (+ BED of intervals) to a prepared DNA dataset"),
    "prepare-species": ("commands.prepare_species", "per-species FASTAs or a MAF alignment to a species-classification dataset"),
    "prepare-audio": ("commands.prepare_audio", "audio files to an 8-bit mu-law dataset (long recordings or labelled clips)"),
    "examples": ("commands.examples", "fetch and prepare the example data (dna: human genome parts and apes; audio: piano, digits)"),
    "pretrain": ("commands.pretrain", "LM pretraining, causal (DNA or audio) or masked (Caduceus), from the Hydra configs: pretrain experiment=dna/hg_small_cpu ..."),
    "finetune": ("commands.finetune", "species classification from a pretrained LM: finetune experiment=species/species5_cpu net.pretrained=..."),
    "evaluate": ("commands.evaluate", "test metrics of a trained model: evaluate experiment=... ckpt_path=... (or net.pretrained=...)"),
    "sample": ("commands.sample", "audio clips (WAV + PNG) or DNA sequences (FASTA) from a trained LM, with their log-likelihoods"),
    "compare": ("commands.compare", "train several models and compare them: compare experiment=compare/species_lengths "
                "(accuracy vs window length) or compare/dna_models (Mamba vs BiMamba vs RCPS); JSON + PNG"),
    "evaluate-audio": ("commands.evaluate_audio", "SC09 metrics (FID, IS, mIS, AM) of generated and real test clips with a digit classifier (trained with --train-classifier)"),
    "embed": ("commands.embed", "embeddings of FASTA records or BED regions from a DNA model folder: per sequence or per base, any layer; .npy, .safetensors or Parquet"),
    "score": ("commands.score", "per-base log-likelihoods and entropies of FASTA records (bedGraph, bigWig) and per-record perplexity, any length"),
    "vep": ("commands.vep", "variant effect scores: each VCF variant's log-likelihood ratio alt vs ref (VCF with an INFO field, TSV, Parquet)"),
    "quickstart": ("commands.quickstart", "fetch the example data, pretrain DNA and audio LMs, fine-tune the species5 classifier, sample audio, "
                   "write quickstart/report.md (about 15 minutes on 2 CPU cores)"),
}
BENCHMARKS = {
    "data-dna": ("bench.data_dna", "prepare-dna MB/s on plain, gzip and BGZF FASTA, and window-reader tokens/s at 1M-token windows"),
    "data-audio": ("bench.data_audio", "prepare-audio real-time factor for 16 kHz mu-law output from WAV and FLAC input"),
    "scan": ("bench.scan", "selective scan forward / forward+backward time of every backend vs the reference"),
    "memory": ("bench.memory", "peak training memory and tokens/s vs sequence length: Mamba chunked/unchunked vs Transformer++"),
    "train": ("bench.batch_sweep", "training memory and tokens/s vs batch at L 2048 (paper Table 15): Mamba vs Transformer++"),
    "generate": ("bench.generate", "SaShiMi audio sampling speed, samples/s per stream and in total, batch 1 ... 256"),
    "genomics": ("bench.genomics", "vep variants/s with prefix reuse vs naive rescoring (1 kb, 8 kb, 131 kb), score bases/s and memory at 1 and 10 Mb, embed sequences/s"),
    "cpu": ("bench.cpu", "CPU training step by op and decoding vs the measured matmul rate, chunked L 16384, torch.compile, mambapy/transformers peers"),
    "kernels": ("bench.kernels", "static report, no GPU needed: every Triton kernel compiled for sm_80/sm_90, registers, spills, occupancy, SASS mix, modelled bound vs floor"),
    "reviewers": ("bench.reviewers", "the reviewers' studies (docs/reviewers.md): copying, induction, ablation, mqar (recall vs state size), cost (vs Transformer++); JSON + PNG each"),
}


def _add_lazy(sub, name: str, module: str, help_text: str) -> None:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    command = importlib.import_module(f"mamba_bio_audio.pipelines.{module}")
    command.add_arguments(parser)
    parser.set_defaults(run=command.run)


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mamba-bio-audio",
        description="Mamba selective state space models for very long DNA and audio sequences.",
    )
    parser.add_argument("--version", action="version", version=f"mamba-bio-audio {mamba_bio_audio.__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log which kernel backend each op uses, and more")
    parser.add_argument("--release-memory", action="store_true",
                        help="hand freed memory back to the OS at once (the C library's default); without it, freed "
                             "blocks below 1 GiB stay in the process for the next step to reuse, with no page faults")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    positionals = [a for a in argv if not a.startswith("-")]
    wanted = positionals[0] if positionals else None
    wanted_bench = positionals[1] if wanted == "bench" and len(positionals) > 1 else None
    for name, (module, help_text) in COMMANDS.items():
        if name == wanted:
            _add_lazy(sub, name, module, help_text)
        else:
            sub.add_parser(name, help=help_text)
    bench = sub.add_parser("bench", help="benchmarks; JSON under benchmarks/results/")
    bench_sub = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    bench_sub.required = True
    for name, (module, help_text) in BENCHMARKS.items():
        if name == wanted_bench:
            _add_lazy(bench_sub, name, module, help_text)
        else:
            bench_sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    spin = openmp_spin.shorten_openmp_spin()  # before the subcommand's module imports torch
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if spin == "late":
        logging.getLogger(__name__).info("torch was loaded before the command ran: its OpenMP workers keep their "
                                         "default spin")
    if not args.release_memory and not process_memory.keep_freed_memory():
        logging.getLogger(__name__).info("this C library has no mallopt: freed memory goes back to the OS")
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"mamba-bio-audio {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as err:  # a full disk, a memory limit, a pool that stopped: what the machine refused
        if args.verbose:
            raise
        print(f"mamba-bio-audio {args.command}: error: {err or type(err).__name__} (run with -v for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
