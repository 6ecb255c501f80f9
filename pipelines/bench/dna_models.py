"""``mamba-bio-audio bench dna-models``: causal Mamba against BiMamba (Caduceus-Ph) and RCPS (Caduceus-PS) on
the DNA bundled with the package, at one parameter count and one token budget, on the CPU.

Data: the human (16,569 bp) and orangutan (16,499 bp) mitochondrial genomes shipped in
``data_prep/examples/data``; the first 80 % of each genome trains, the last 20 % is held out, so the figures
run on a fresh machine without network. The downstream task uses the prepared species dataset at
``--species-data`` (``mamba-bio-audio examples dna`` writes ``data/apes4``) when it exists, else the same
genomes; the JSON names which.

1. Pretraining, the same windows (L tokens) and steps for every model: the causal Mamba LM with its next-token
   loss, and the causal Mamba, BiMamba and RCPS under the masked-LM task (15 % / 80-10-10; the causal model then
   predicts a masked base from its left context). BiMamba trains with RC augmentation (p 0.5, the Caduceus-Ph
   recipe), RCPS without. The causal Mamba's width is chosen so its parameter count matches the others'
   (RCPS shares every parameter between the strands, so BiMamba and RCPS count the same). Held-out loss (nats
   per scored token; fixed windows and masks) is recorded along the way, and training tokens/s of each run.
2. Downstream: "which species is this window from?" (balanced classes) with a classifier started from
   each pretrained backbone (causal: the next-token LM, last-token pooling as the Mamba paper's Great Apes head;
   BiMamba, RCPS: mean pooling, RC-invariant for RCPS), fine-tuned with and without RC augmentation, scored on
   held-out windows read on the given strand, on the reverse strand, and with post-hoc RC conjoining (the
   logits of a window and of its reverse complement averaged).

Baselines in the JSON: the base-composition entropy of the held-out bases (a masked base guessed from
composition alone), an order-4 Markov chain's next-base loss, and a k-mer spectrum (k <= 4) logistic-regression
classifier (chance: 0.5). Every random draw is seeded.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.checkpoint import load_weights
from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST
from mamba_bio_audio.data_prep.formats.fasta import bundled_example, read_fasta
from mamba_bio_audio.models import (CaduceusConfig, CaduceusForMaskedLM, CaduceusForSequenceClassification,
                                    MambaForSequenceClassification, MambaLMHeadModel, param_groups)
from mamba_bio_audio.models.caduceus import mlm_mask
from mamba_bio_audio.modules.rcps import rc_ids
from mamba_bio_audio.pipelines.evaluation.baselines import KmerSpeciesBaseline, MarkovBaseline
from mamba_bio_audio.pipelines.reporting import sweep_report
from mamba_bio_audio.pipelines.reporting.bench_results import load_average
from mamba_bio_audio.tokenizers import NucleotideTokenizer

GENOMES = {"human": "MT-human.fa.gz", "orangutan": "MT-orang.fa.gz"}
TRAIN_FRACTION = 0.8
TOKENIZER = NucleotideTokenizer(unknown="n")
COMPLEMENT = TOKENIZER.complement_tensor(16)
PRETRAIN_RUNS = (  # name, architecture, objective, RC augmentation probability
    ("mamba_lm", "mamba", "lm", 0.0),
    ("mamba_mlm", "mamba", "mlm", 0.0),
    ("bimamba_mlm", "bimamba", "mlm", 0.5),
    ("rcps_mlm", "rcps", "mlm", 0.0),
)
BACKBONE_FOR_CLASSIFIER = {"mamba": "mamba_lm", "bimamba": "bimamba_mlm", "rcps": "rcps_mlm"}
QUICK = {"width": 8, "layers": 1, "d_state": 4, "seq_len": 32, "batch": 2, "steps": 3, "finetune_steps": 2,
         "evals": 1, "eval_windows": 4}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--width", type=int, default=32,
                        help="d_model of BiMamba and RCPS, even (default: %(default)s)")
    parser.add_argument("--layers", type=int, default=2, help="blocks of every model (default: %(default)s)")
    parser.add_argument("--d-state", type=int, default=16, help="SSM state size (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per window (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=16, help="windows per step (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=100, help="pretraining steps of every run (default: %(default)s)")
    parser.add_argument("--finetune-steps", type=int, default=25, help="classifier steps (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=8e-3, help="pretraining peak LR (default: %(default)s)")
    parser.add_argument("--finetune-lr", type=float, default=2e-3, help="classifier peak LR (default: %(default)s)")
    parser.add_argument("--evals", type=int, default=4, help="held-out evaluations per run (default: %(default)s)")
    parser.add_argument("--eval-windows", type=int, default=64,
                        help="held-out windows per genome (default: %(default)s)")
    parser.add_argument("--species-data", type=Path, default=Path("data/apes4"),
                        help="prepared species dataset for the downstream task, if it exists (default: %(default)s; "
                        "else the bundled genomes)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny models and a few steps: checks the pipeline only")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"), help="where JSON and PNG go")


# ------------------------------------------------------------------------------------------------------ data


def load_genomes() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """species -> (train ids, held-out ids) int64 of the bundled mitochondrial genomes."""
    out = {}
    for species, name in GENOMES.items():
        seq = "".join(record.sequence for record in read_fasta(bundled_example(name)))
        ids = torch.from_numpy(TOKENIZER.encode(seq))
        cut = int(len(ids) * TRAIN_FRACTION)
        out[species] = (ids[:cut], ids[cut:])
    return out


def draw_windows(parts: list[torch.Tensor], count: int, length: int, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random windows (count, length) int64 and their part index (count,) int64, balanced over
    ``parts``."""
    labels = torch.arange(count) % len(parts)
    rows = []
    for label in labels.tolist():
        part = parts[label]
        start = int(torch.randint(0, len(part) - length + 1, (1,), generator=generator))
        rows.append(part[start:start + length])
    return torch.stack(rows), labels


def augment(windows: torch.Tensor, rc_prob: float, generator: torch.Generator) -> torch.Tensor:
    """windows (n, L) int64, each reverse-complemented with probability ``rc_prob``."""
    flip = torch.rand(len(windows), generator=generator) < rc_prob
    windows = windows.clone()
    windows[flip] = rc_ids(windows[flip], COMPLEMENT)
    return windows


def spaced_windows(parts: list[torch.Tensor], per_part: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_part`` evenly spaced windows of every part, and their part index."""
    rows, labels = [], []
    for label, part in enumerate(parts):
        for start in np.linspace(0, len(part) - length, per_part).round().astype(int).tolist():
            rows.append(part[start:start + length])
            labels.append(label)
    return torch.stack(rows), torch.tensor(labels)


class Downstream(NamedTuple):
    """A species task: ``sample(count, generator)`` → (windows (count, L) int64, labels (count,) int64) for
    training; ``test`` (windows, labels), fixed."""

    description: str
    classes: list[str]
    sample: Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
    test: tuple[torch.Tensor, torch.Tensor]


def downstream_task(args, train_parts: list[torch.Tensor], held_parts: list[torch.Tensor]) -> Downstream:
    """The prepared species dataset at ``args.species_data`` when there is one (``examples dna`` writes
    data/apes4), else the bundled genomes split as for pretraining."""
    folder = args.species_data
    if folder is None or not (Path(folder) / MANIFEST).is_file():
        return Downstream(f"bundled mitochondrial genomes, held-out last {1 - TRAIN_FRACTION:.0%} of each",
                          list(GENOMES), lambda n, g: draw_windows(train_parts, n, args.seq_len, g),
                          spaced_windows(held_parts, args.eval_windows, args.seq_len))
    from mamba_bio_audio.data_prep.datasets.species_windows import SpeciesWindowDataset

    total = args.batch * args.finetune_steps
    train = SpeciesWindowDataset(folder, "train", args.seq_len, total, seed=args.seed)
    test = SpeciesWindowDataset(folder, "test", args.seq_len, args.eval_windows * len(train.species),
                                seed=args.seed + 1)
    drawn = iter(range(10**9))

    def sample(n: int, generator: torch.Generator):
        items = [train[next(drawn) % total] for _ in range(n)]
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items]).long()

    test_items = [test[i] for i in range(len(test))]
    return Downstream(f"prepared species dataset {folder} (train / test splits)", list(train.species), sample,
                      (torch.stack([x for x, _ in test_items]), torch.stack([y for _, y in test_items]).long()))


# ---------------------------------------------------------------------------------------------------- models


def caduceus_config(width: int, layers: int, d_state: int, rcps: bool, **fields) -> CaduceusConfig:
    return CaduceusConfig(d_model=width, n_layer=layers, vocab_size=12, ssm_cfg={"d_state": d_state},
                          complement_map="dna", rcps=rcps, residual_in_fp32=True, **fields)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_mamba_config(target: int, width: int, layers: int, d_state: int) -> MambaConfig:
    """The MambaConfig (DNA vocabulary) whose parameter count is closest to ``target``, searched from ``width``
    (a BiMamba of that width) to twice it."""
    def build(width):
        return MambaConfig(d_model=width, n_layer=layers, vocab_size=12, ssm_cfg={"d_state": d_state},
                           pad_token_id=TOKENIZER.pad_token_id)

    best = min(range(width, 2 * width + 1),
               key=lambda w: abs(count(MambaLMHeadModel(build(w), device="meta")) - target))
    return build(best)


def pretrain_model(arch: str, args) -> torch.nn.Module:
    if arch == "mamba":
        target = count(CaduceusForMaskedLM(caduceus_config(args.width, args.layers, args.d_state, False),
                                           device="meta"))
        return MambaLMHeadModel(matched_mamba_config(target, args.width, args.layers, args.d_state))
    return CaduceusForMaskedLM(caduceus_config(args.width, args.layers, args.d_state, arch == "rcps"))


def classifier_from(backbone: torch.nn.Module, classes: int) -> torch.nn.Module:
    """A classifier holding ``backbone``'s weights (its LM head dropped, ``score`` fresh)."""
    if isinstance(backbone, MambaLMHeadModel):
        config = dataclasses.replace(backbone.config, num_labels=classes, pooling="last")
        model = MambaForSequenceClassification(config)
    else:
        config = dataclasses.replace(backbone.config, num_labels=classes, pooling="mean")
        model = CaduceusForSequenceClassification(config)
    return load_weights(model, backbone.state_dict())


# ------------------------------------------------------------------------------------------------- training


def _optimizer(model, lr: float, steps: int):
    """AdamW (0.9, 0.95), weight decay 0.1 on the weight matrices; LR: linear warmup over the first 10 % of the
    steps, then a cosine down to lr / 10."""
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=lr, betas=(0.9, 0.95))
    warmup = max(1, steps // 10)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _loss(model, windows: torch.Tensor, objective: str, generator: torch.Generator) -> torch.Tensor:
    if objective == "lm":
        return model(windows[:, :-1], labels=windows[:, 1:]).loss
    masked, labels = mlm_mask(windows[:, :-1], generator, pad_token_id=TOKENIZER.pad_token_id)
    return model(masked, labels=labels).loss


@torch.no_grad()
def held_out_loss(model, windows: torch.Tensor, objective: str, seed: int) -> float:
    model.eval()
    loss = _loss(model, windows, objective, torch.Generator().manual_seed(seed)).item()
    model.train()
    return loss


def eval_points(steps: int, evals: int) -> set[int]:
    return {round(steps * (i + 1) / evals) for i in range(evals)}


def pretrain(model, objective: str, rc_prob: float, train_parts, held_out: torch.Tensor, args) -> dict:
    generator = torch.Generator().manual_seed(args.seed)
    optimizer, scheduler = _optimizer(model, args.lr, args.steps)
    points = eval_points(args.steps, args.evals)
    curve = [(0, held_out_loss(model, held_out, objective, args.seed))]
    _loss(model, held_out[:2], objective, torch.Generator()).backward()  # untimed: kernels compile on first use
    optimizer.zero_grad(set_to_none=True)
    train_seconds, tokens = 0.0, 0
    for step in range(1, args.steps + 1):
        windows = augment(draw_windows(train_parts, args.batch, args.seq_len + 1, generator)[0], rc_prob, generator)
        start = time.perf_counter()
        loss = _loss(model, windows, objective, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        train_seconds += time.perf_counter() - start
        tokens += args.batch * args.seq_len
        if step in points:
            curve.append((tokens, held_out_loss(model, held_out, objective, args.seed)))
    return {"objective": objective, "rc_prob": rc_prob, "params": count(model), "tokens": tokens,
            "train_seconds": round(train_seconds, 2), "tokens_per_s": round(tokens / train_seconds, 1),
            "held_out_loss": curve[-1][1], "curve": curve}


@torch.no_grad()
def accuracies(model, windows: torch.Tensor, labels: torch.Tensor) -> dict:
    """Accuracy on the strand given, on the reverse strand, and RC-conjoined (logits of both averaged)."""
    model.eval()
    logits = model(windows).logits.float()
    logits_rc = model(rc_ids(windows, COMPLEMENT)).logits.float()
    model.train()
    score = lambda lg: round(float((lg.argmax(-1) == labels).float().mean()), 4)  # noqa: E731
    return {"forward": score(logits), "reverse": score(logits_rc), "conjoined": score((logits + logits_rc) / 2)}


def finetune(model, rc_prob: float, task: Downstream, args) -> dict:
    generator = torch.Generator().manual_seed(args.seed + 1)
    test = task.test
    optimizer, scheduler = _optimizer(model, args.finetune_lr, args.finetune_steps)
    points = eval_points(args.finetune_steps, args.evals)
    curve, start = [], time.perf_counter()
    for step in range(1, args.finetune_steps + 1):
        windows, labels = task.sample(args.batch, generator)
        loss = model(augment(windows, rc_prob, generator), labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step in points:
            acc = accuracies(model, *test)
            curve.append((step, (acc["forward"] + acc["reverse"]) / 2))
    return {"rc_prob": rc_prob, "seconds": round(time.perf_counter() - start, 2), **accuracies(model, *test),
            "curve": curve}


# ------------------------------------------------------------------------------------------------ baselines


def kmer_baseline(task: Downstream, args) -> dict:
    """k-mer spectrum (k = 1..4) logistic regression fitted on as many training windows as the classifiers see,
    scored on the given and on the reverse strand."""
    windows, labels = task.sample(args.batch * args.finetune_steps, torch.Generator().manual_seed(args.seed + 1))
    baseline = KmerSpeciesBaseline(k_max=4).fit(windows.numpy(), labels.numpy())
    test, truth = task.test[0], task.test[1].numpy()
    return {"forward": round(baseline.accuracy(test.numpy(), truth), 4),
            "reverse": round(baseline.accuracy(rc_ids(test, COMPLEMENT).numpy(), truth), 4)}


def composition_entropy(parts: list[torch.Tensor]) -> float:
    """Entropy (nats) of the base composition of ``parts``' A, C, G, T."""
    ids = torch.cat(parts)
    counts = torch.bincount(ids[(ids >= 7) & (ids <= 10)] - 7, minlength=4).double()
    p = counts / counts.sum()
    return float(-(p * p.log()).sum())


def markov_loss(train_parts, held_parts, order: int = 4) -> float:
    """Order-``order`` Markov next-base loss (nats) of the held-out genomes, counts from the training parts."""
    baseline = MarkovBaseline(order)
    baseline.fit(np.concatenate([p.numpy() for p in train_parts]))
    bits = [baseline.bits_per_base(p.numpy()) for p in held_parts]
    return float(np.mean(bits) * math.log(2))


# ---------------------------------------------------------------------------------------------------------- run


def run(args) -> int:
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.width < 2 or args.width % 2 or args.layers < 1 or args.steps < 1 or args.finetune_steps < 1:
        raise ValueError("--width must be an even integer >= 2 (RCPS splits it), --layers, --steps and "
                         "--finetune-steps >= 1")
    if args.evals < 1 or args.eval_windows < 1 or args.batch < 2 or args.seq_len < 8:
        raise ValueError("--evals, --eval-windows must be >= 1, --batch >= 2 (both species), --seq-len >= 8")
    if args.threads:
        ops.set_cpu_threads(args.threads)
    load_before = load_average()
    genomes = load_genomes()
    train_parts = [train for train, _ in genomes.values()]
    held_parts = [held for _, held in genomes.values()]
    held_out, _ = spaced_windows(held_parts, args.eval_windows, args.seq_len + 1)
    task = downstream_task(args, train_parts, held_parts)

    pretrained, runs = {}, {}
    for name, arch, objective, rc_prob in PRETRAIN_RUNS:
        torch.manual_seed(args.seed)
        model = pretrain_model(arch, args)
        runs[name] = {"architecture": arch, "width": model.config.d_model,
                      **pretrain(model, objective, rc_prob, train_parts, held_out, args)}
        pretrained[name] = model
        print(f"{name:12s} {runs[name]['params']:8d} params  held-out loss {runs[name]['held_out_loss']:.4f} nats  "
              f"{runs[name]['tokens_per_s']:9.1f} tokens/s", flush=True)

    downstream = {}
    for arch, source in BACKBONE_FOR_CLASSIFIER.items():
        for rc_prob in (0.0, 0.5):
            torch.manual_seed(args.seed)
            result = finetune(classifier_from(pretrained[source], len(task.classes)), rc_prob, task, args)
            key = f"{arch}{'_rc_aug' if rc_prob else ''}"
            downstream[key] = {"architecture": arch, "backbone": source, **result}
            print(f"{key:16s} accuracy forward {result['forward']:.3f}  reverse {result['reverse']:.3f}  "
                  f"conjoined {result['conjoined']:.3f}", flush=True)

    baselines = {"composition_entropy_nats": round(composition_entropy(held_parts), 4),
                 "markov4_next_base_nats": round(markov_loss(train_parts, held_parts), 4),
                 "kmer4_logistic_accuracy": kmer_baseline(task, args), "chance_accuracy": 1 / len(task.classes)}
    report = {
        "machine": sweep_report.machine("cpu") | {"loadavg_before": load_before, "loadavg_after": load_average(),
                                                  "threads": torch.get_num_threads()},
        "parameters": {k: getattr(args, k) for k in ("width", "layers", "d_state", "seq_len", "batch", "steps",
                                                     "finetune_steps", "lr", "finetune_lr", "evals", "eval_windows",
                                                     "seed", "quick")},
        "data": {"pretraining": f"bundled mitochondrial genomes {GENOMES}, first {TRAIN_FRACTION:.0%} of each",
                 "downstream": task.description, "classes": task.classes, "test_windows": len(task.test[1])},
        "pretraining": runs, "downstream": downstream, "baselines": baselines,
    }
    panels = [
        {"title": f"held-out loss, L {args.seq_len}, {runs['bimamba_mlm']['params']:,} parameters",
         "xlabel": "training tokens", "ylabel": "nats per scored token",
         "series": {f"{name} ({r['tokens_per_s'] / 1e3:.1f}k tok/s)": ([c[0] for c in r["curve"]],
                                                                       [c[1] for c in r["curve"]])
                    for name, r in runs.items()},
         "hlines": {"base composition (MLM)": baselines["composition_entropy_nats"],
                    "order-4 Markov (next base)": baselines["markov4_next_base_nats"]}},
        {"title": f"{' vs '.join(task.classes)}: test accuracy (both strands)", "xlabel": "fine-tuning step",
         "ylabel": "test accuracy", "series": {k: ([c[0] for c in r["curve"]], [c[1] for c in r["curve"]])
                                               for k, r in downstream.items()},
         "hlines": {"chance": baselines["chance_accuracy"],
                    "k-mer logistic": sum(baselines["kmer4_logistic_accuracy"].values()) / 2}},
    ]
    json_path, png_path = sweep_report.write("dna_models", report, args.out_dir, panels)
    print(f"wrote {png_path}")
    return 0
