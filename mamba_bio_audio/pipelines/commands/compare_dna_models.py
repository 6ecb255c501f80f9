"""``compare experiment=compare/dna_models``: causal Mamba against BiMamba (Caduceus-Ph) and RCPS (Caduceus-PS) on
the DNA bundled with the package, at one parameter count and one token budget, on the CPU. The settings are the
experiment's ``compare`` block (``compare/dna_models_quick``: tiny models, a few steps).

Data: the human (16,569 bp) and orangutan (16,499 bp) mitochondrial genomes shipped in
``data_prep/examples/data``; the first 80 % of each genome trains, the last 20 % is held out, so the figures
run on a fresh machine without network. The downstream task uses the prepared species dataset at
``compare.species_data`` (``mamba-bio-audio examples dna`` writes ``data/apes4``) when it exists, else the same
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

Optimizers and LR schedules are the Hydra tasks' (``configure_optimizers`` of ``task/lm``, ``task/masked_lm`` and
``task/classification``, with ``compare.pretrain_task`` / ``compare.finetune_task`` overrides): AdamW with weight
decay on the weight matrices, linear warmup, cosine decay. The loops here are the measurement: they time each step
and score held-out windows along the way.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch

from mamba_bio_audio import ops
from mamba_bio_audio.pretrained import load_weights
from mamba_bio_audio.config import MambaConfig
from mamba_bio_audio.data_prep.datasets.prepared import MANIFEST
from mamba_bio_audio.data_prep.formats.fasta import bundled_example, read_fasta
from mamba_bio_audio.models import (CaduceusConfig, CaduceusForMaskedLM, CaduceusForSequenceClassification,
                                    MambaForSequenceClassification, MambaLMHeadModel)
from mamba_bio_audio.models.caduceus import mlm_mask
from mamba_bio_audio.modules.rcps import rc_ids
from mamba_bio_audio.pipelines.evaluation.baselines import KmerSpeciesBaseline, MarkovBaseline
from mamba_bio_audio.pipelines.reporting import sweep_report
from mamba_bio_audio.pipelines.reporting.bench_results import start
from mamba_bio_audio.tokenizers import NucleotideTokenizer

GENOMES = {"human": "MT-human.fa.gz", "orangutan": "MT-orang.fa.gz"}
TRAIN_FRACTION = 0.8
TOKENIZER = NucleotideTokenizer(unknown="n")
COMPLEMENT = TOKENIZER.complement_tensor(16)
TASKS = {"lm": "lm", "mlm": "masked_lm"}  # objective -> Hydra task config (configs/task/)
PRETRAIN_RUNS = (  # name, architecture, objective, RC augmentation probability
    ("mamba_lm", "mamba", "lm", 0.0),
    ("mamba_mlm", "mamba", "mlm", 0.0),
    ("bimamba_mlm", "bimamba", "mlm", 0.5),
    ("rcps_mlm", "rcps", "mlm", 0.0),
)
BACKBONE_FOR_CLASSIFIER = {"mamba": "mamba_lm", "bimamba": "bimamba_mlm", "rcps": "rcps_mlm"}
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


def task_optimizer(model, task: str, overrides: list[str], steps: int):
    """(optimizer, per-step LR scheduler) for ``model`` as the Hydra task ``configs/task/<task>.yaml`` (with
    ``overrides``) configures them for a run of ``steps`` optimizer steps."""
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from mamba_bio_audio.pipelines.commands.hydra_compose import compose

    extra = ["task.num_classes=2"] if task == "classification" else []  # the head is the model's; unused here
    cfg = compose("train", [f"task={task}", *extra, *overrides])
    task_cfg = OmegaConf.masked_copy(cfg.task, [key for key in cfg.task if key != "objective"])  # as train.build
    training = instantiate(task_cfg, net=model, _convert_="all")
    training.trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator="cpu", devices=1, logger=False,
                                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    configured = training.configure_optimizers()
    return configured["optimizer"], configured["lr_scheduler"]["scheduler"]


def _loss(model, windows: torch.Tensor, objective: str, generator: torch.Generator) -> torch.Tensor:
    if objective == "lm":
        return model(windows[:, :-1], targets=windows[:, 1:]).loss
    masked, labels = mlm_mask(windows[:, :-1], generator, pad_token_id=TOKENIZER.pad_token_id)
    if isinstance(model, MambaLMHeadModel):  # the causal model scores each position on its own masked base
        return model(masked, targets=labels).loss
    return model(masked, labels=labels).loss  # the masked LM's labels are aligned with its input


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
    optimizer, scheduler = task_optimizer(model, TASKS[objective], args.pretrain_task, args.steps)
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
    optimizer, scheduler = task_optimizer(model, "classification", args.finetune_task, args.finetune_steps)
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


def settings(cfg) -> SimpleNamespace:
    """The experiment's ``compare`` block and ``seed``, checked."""
    from omegaconf import OmegaConf

    args = SimpleNamespace(**OmegaConf.to_container(cfg.compare, resolve=True), seed=int(cfg.seed))
    args.species_data = Path(args.species_data) if args.species_data else None
    if args.width < 2 or args.width % 2 or args.layers < 1 or args.steps < 1 or args.finetune_steps < 1:
        raise ValueError("compare.width must be an even integer >= 2 (RCPS splits it), compare.layers, steps and "
                         "finetune_steps >= 1")
    if args.evals < 1 or args.eval_windows < 1 or args.batch < 2 or args.seq_len < 8:
        raise ValueError("compare.evals, eval_windows must be >= 1, compare.batch >= 2 (both species), "
                         "compare.seq_len >= 8")
    return args


def run(cfg, overrides: list[str]) -> int:
    args = settings(cfg)
    if args.threads:
        ops.set_cpu_threads(args.threads)
    run_start = start()
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
        "parameters": {k: getattr(args, k) for k in ("width", "layers", "d_state", "seq_len", "batch", "steps",
                                                     "finetune_steps", "pretrain_task", "finetune_task", "evals",
                                                     "eval_windows", "seed")} | {"experiment": cfg.task_name},
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
    sweep_report.write("dna_models", report, Path(args.out_dir), panels, run_start)
    return 0
