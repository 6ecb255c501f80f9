"""``mamba-bio-audio compare experiment=compare/<name> [KEY=VALUE ...]``: an experiment that trains several models
and compares what they measure (accuracy, loss, speed), writing one JSON and one PNG through
``reporting/bench_results.py``. The experiment's ``compare.name`` picks the comparison:

* ``species_lengths`` (:mod:`.compare_species`): species accuracy against window length, beside a k-mer baseline;
* ``dna_models`` (:mod:`.compare_dna_models`): causal Mamba against BiMamba and RCPS on the bundled DNA.
"""
from __future__ import annotations

import importlib

from mamba_bio_audio.pipelines.commands.training_command import add_overrides, compose_checked

COMPARISONS = {"species_lengths": "compare_species", "dna_models": "compare_dna_models"}


def add_arguments(parser) -> None:
    add_overrides(parser, "experiment=compare/species_lengths paths.data_dir=data compare.lengths=[1024,8192]")


def run(args) -> int:
    from mamba_bio_audio.pipelines.commands.output_folders import check_run_folder

    cfg = compose_checked(args, [], None, "compare")
    if cfg is None:
        return 0
    name = (cfg.get("compare") or {}).get("name")
    if name not in COMPARISONS:
        raise ValueError(f"compare runs an experiment under compare/ ({', '.join(f'compare/{n}' for n in COMPARISONS)})"
                         f"; this config's compare.name is {name!r}")
    check_run_folder(cfg)
    module = importlib.import_module(f"mamba_bio_audio.pipelines.commands.{COMPARISONS[name]}")
    return module.run(cfg, list(args.overrides))
