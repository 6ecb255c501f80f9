"""What the ``score`` and ``vep`` commands share: their common options, loading a DNA model, the indexed
reference FASTA, the fingerprint that ties a resumable work folder to its inputs, and their output folders."""
from __future__ import annotations

import argparse
from pathlib import Path

from mamba_bio_audio.folder_kinds import layout_kind
from mamba_bio_audio.pipelines.commands.shared import add_progress_argument

__all__ = ["SCORE_FOLDER", "VEP_FOLDER", "add_run_arguments", "fingerprint_files", "load_dna_model",
           "ReferenceFasta"]

TEMPORARIES = ".*.tmp"
SCORE_FOLDER = layout_kind("a score output folder", files=("loglik.bedGraph", "entropy.bedGraph", "loglik.bw",
                                                         "entropy.bw", "records.tsv", TEMPORARIES))
VEP_FOLDER = layout_kind("a vep output folder", files=("variants.vcf.gz", "variants.tsv", "variants.parquet",
                                                     TEMPORARIES))


def add_run_arguments(parser: argparse.ArgumentParser, batch_help: str, batch_default: int) -> None:
    """--devices, --num-nodes, --accelerator, --batch-size, --rc-average, --restart and --no-progress."""
    parser.add_argument("--rc-average", action="store_true",
                        help="average every score with the reverse-complement strand's (as GPN does)")
    parser.add_argument("--batch-size", type=int, default=batch_default, help=f"{batch_help} (default: %(default)s)")
    group = parser.add_argument_group("processes (Lightning's predict loop; resumable)")
    group.add_argument("--devices", type=int, default=1, help="processes (CPU) or GPUs per node (default: 1)")
    group.add_argument("--num-nodes", type=int, default=1, help="nodes (default: 1); or start the ranks with torchrun")
    group.add_argument("--accelerator", choices=("cpu", "gpu", "auto"), default="cpu",
                       help="where the model runs (default: %(default)s)")
    group.add_argument("--restart", action="store_true",
                       help="discard the partial results of an earlier run with other inputs (OUT.work)")
    add_progress_argument(parser)


def load_dna_model(path: str | Path):
    """The model of an exported folder (ours, mamba_ssm's, a published Caduceus folder) or a Lightning .ckpt,
    in eval mode; ValueError unless it is a DNA causal LM or masked LM."""
    from mamba_bio_audio.pipelines.training.nets import load_net
    from mamba_bio_audio.scoring import check_dna_lm

    model = load_net(path)
    check_dna_lm(model, str(path))
    return model


def fingerprint_files(*paths: str | Path) -> dict:
    """{path: [size, mtime_ns]} of every file given (every file inside a folder given): what a work folder's
    results were computed from."""
    out = {}
    for path in paths:
        path = Path(path).resolve()
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            out[str(f)] = [st.st_size, st.st_mtime_ns]
    return out


class ReferenceFasta:
    """An indexed FASTA (plain or BGZF; the .fai is built beside it when missing): ``lengths`` {name: bases},
    ``sequence(name)`` → an object whose ``[a:b]`` gives the uint8 ids of bases [a, b), upper-cased, IUPAC
    codes as N."""

    def __init__(self, path: str | Path):
        from mamba_bio_audio.data_prep.formats.fasta_stream import check_readable, token_table
        from mamba_bio_audio.data_prep.formats.indexed_fasta import open_indexed
        from mamba_bio_audio.tokenizers import NucleotideTokenizer

        self.path = check_readable(path)
        self.fasta = open_indexed(self.path)
        self.tokenizer = NucleotideTokenizer()
        self.table = token_table(self.tokenizer)
        self.lengths = {name: self.fasta.faidx.index[name].rlen for name in self.fasta.keys()}
        self._open: dict = {}

    def sequence(self, name: str):
        from mamba_bio_audio.data_prep.formats.indexed_fasta import IndexedSequence

        if name not in self.lengths:
            shown = ", ".join(list(self.lengths)[:5]) + (" ..." if len(self.lengths) > 5 else "")
            raise ValueError(f"{self.path}: has no sequence {name!r} (it has {shown})")
        if name not in self._open:
            self._open[name] = IndexedSequence(self.fasta, self.path, name, self.tokenizer, self.table)
        return self._open[name]
