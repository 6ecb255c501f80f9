"""``mamba-bio-audio quickstart``: the end-to-end job on the bundled example DNA, CPU-sized.

Pretrains a small Mamba LM on the human mitochondrial genome (first 90 %), evaluates bits per base on the
held-out last 10 % and on the orangutan mitochondrial genome against count-based baselines, checks that
recurrent decoding reproduces the parallel forward, samples a continuation, exports and reloads the model,
and writes ``report.md`` with a loss-curve PNG.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mamba_bio_audio import MambaConfig, MambaLMHeadModel
from mamba_bio_audio.data_prep.fasta import bundled_example, read_fasta
from mamba_bio_audio.models.optim import param_groups
from mamba_bio_audio.atomic import write_text_atomic
from mamba_bio_audio.pipelines.baselines import MarkovBaseline
from mamba_bio_audio.pipelines.progress import progress_bar
from mamba_bio_audio.pipelines.report import plot_curve
from mamba_bio_audio.tokenizers import NucleotideTokenizer

LN2 = math.log(2.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("quickstart"), help="output folder (default: ./quickstart)")
    parser.add_argument("--preset", default="dna_mamba_250k", help="model preset under configs/model/ (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=10.0, help="stop training after this many minutes (default: %(default)s)")
    parser.add_argument("--seq-len", type=int, default=1024, help="training window length (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per step (default: %(default)s)")
    parser.add_argument("--lr", type=float, default=8e-3, help="peak learning rate; the paper's DNA Mamba LR (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)


def _check_args(args) -> None:
    for name in ("steps", "seq_len", "batch_size"):
        if getattr(args, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be > 0; got {getattr(args, name)}")
    if not args.minutes > 0:
        raise ValueError(f"--minutes must be > 0; got {args.minutes}")
    if not args.lr > 0:
        raise ValueError(f"--lr must be > 0; got {args.lr}")


def _lr_at(step: int, total: int, peak: float, floor: float = 1e-5) -> float:
    """Linear warmup over 10 % of the steps, then cosine to ``floor`` (the paper's DNA schedule)."""
    warmup = max(1, total // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _sample_windows(tokens: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, seq_len + 1) int64 windows at uniform random starts."""
    starts = torch.randint(0, tokens.numel() - seq_len - 1 + 1, (batch_size,), generator=generator)
    return torch.stack([tokens[s : s + seq_len + 1] for s in starts.tolist()])


@torch.no_grad()
def bits_per_base(model: MambaLMHeadModel, tokens: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Model bits per base over ``tokens[1:]`` given the preceding tokens, in one pass. Returns (bpb, logits)."""
    logits = model(tokens[None, :-1]).logits[0, :, : model.config.vocab_size].float()
    nll = F.cross_entropy(logits, tokens[1:], reduction="mean").item()
    return nll / LN2, logits


@torch.no_grad()
def decode_parity(model: MambaLMHeadModel, tokens: torch.Tensor, prefix: int) -> float:
    """Max |logit| difference between recurrent decoding after a ``prefix``-token prefill and the parallel forward."""
    full = model(tokens[None]).logits[0, :, : model.config.vocab_size]
    result = model.generate(tokens[None, :prefix], max_length=tokens.numel(), teacher_outputs=tokens[None],
                            return_dict_in_generate=True, output_scores=True)
    stepped = torch.stack([s[0, : model.config.vocab_size] for s in result.scores])
    return (stepped - full[prefix - 1 : tokens.numel() - 1]).abs().max().item()


def run(args) -> int:
    _check_args(args)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = NucleotideTokenizer()

    human = read_fasta(bundled_example("MT-human.fa.gz"))[0]
    orang = read_fasta(bundled_example("MT-orang.fa.gz"))[0]
    human_ids = torch.as_tensor(np.asarray(tokenizer.encode(human.sequence)), dtype=torch.long)
    orang_ids = torch.as_tensor(np.asarray(tokenizer.encode(orang.sequence)), dtype=torch.long)
    split = int(0.9 * human_ids.numel())
    train_ids, heldout_ids = human_ids[:split], human_ids[split:]
    if train_ids.numel() <= args.seq_len + 1:
        raise ValueError(f"--seq-len {args.seq_len} is longer than the training sequence ({train_ids.numel()} bases)")

    config = MambaConfig.from_preset(args.preset)
    model = MambaLMHeadModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay=0.1), lr=args.lr, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(args.seed)

    initial_bpb, _ = bits_per_base(model, heldout_ids)
    losses: list[tuple[int, float]] = []
    started = time.perf_counter()
    deadline = started + 60.0 * args.minutes
    model.train()
    with progress_bar() as progress:
        task = progress.add_task("pretraining on MT-human", total=args.steps, loss=float("nan"))
        for step in range(args.steps):
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, args.steps, args.lr)
            batch = _sample_windows(train_ids, args.seq_len, args.batch_size, generator)
            logits = model(batch[:, :-1]).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss {loss.item()} at step {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append((step, loss.item()))
            progress.update(task, advance=1, loss=loss.item())
            if time.perf_counter() > deadline:
                break
    train_seconds = time.perf_counter() - started
    steps_done = len(losses)
    model.eval()

    heldout_bpb, _ = bits_per_base(model, heldout_ids)
    orang_bpb, _ = bits_per_base(model, orang_ids)
    markov = {k: MarkovBaseline(order=k).fit(train_ids.numpy()) for k in (0, 3)}
    parity = decode_parity(model, heldout_ids[:256], prefix=128)

    sample = model.generate(heldout_ids[None, :64], max_length=64 + 256, temperature=1.0, top_k=0,
                            generator=torch.Generator().manual_seed(args.seed))
    sample_bpb, _ = bits_per_base(model, sample[0])
    sample_text = tokenizer.decode(sample[0].tolist())

    export_dir = out / "model"
    model.save_pretrained(export_dir)
    reloaded = MambaLMHeadModel.from_pretrained(export_dir)
    reload_diff = (reloaded(heldout_ids[None, :256]).logits - model(heldout_ids[None, :256]).logits).abs().max().item()

    metrics = {
        "preset": args.preset,
        "parameters": n_params,
        "steps": steps_done,
        "train_seconds": round(train_seconds, 2),
        "train_tokens_per_second": round(steps_done * args.batch_size * args.seq_len / train_seconds, 1),
        "initial_train_loss_nats": losses[0][1],
        "final_train_loss_nats": float(np.mean([l for _, l in losses[-10:]])),
        "heldout_bits_per_base_before": initial_bpb,
        "heldout_bits_per_base": heldout_bpb,
        "heldout_bits_per_base_order0_markov": markov[0].bits_per_base(heldout_ids.numpy()),
        "heldout_bits_per_base_order3_markov": markov[3].bits_per_base(heldout_ids.numpy()),
        "orangutan_bits_per_base": orang_bpb,
        "orangutan_bits_per_base_order3_markov": markov[3].bits_per_base(orang_ids.numpy()),
        "decode_vs_forward_max_abs_logit_diff": parity,
        "reload_max_abs_logit_diff": reload_diff,
        "sample_self_bits_per_base": sample_bpb,
    }
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text_atomic(out / "sample.fa", f">quickstart_sample prompt=MT_human:{split + 1}-{split + 64}\n{sample_text}\n")
    plot_curve(out / "loss.png", [s for s, _ in losses], [l / LN2 for _, l in losses],
               xlabel="step", ylabel="training loss (bits per base)", title="Mamba LM on MT-human",
               hlines={"order-3 Markov (held-out)": metrics["heldout_bits_per_base_order3_markov"]})
    write_text_atomic(out / "report.md", _report(metrics))
    print(_summary(metrics, out))
    return 0


def _report(m: dict) -> str:
    rows = [
        ("parameters", f"{m['parameters']:,}"),
        ("optimizer steps", m["steps"]),
        ("training time (s)", m["train_seconds"]),
        ("training throughput (tokens/s)", m["train_tokens_per_second"]),
        ("training loss, first → last 10 steps (nats)", f"{m['initial_train_loss_nats']:.3f} → {m['final_train_loss_nats']:.3f}"),
        ("held-out bits/base, untrained → trained", f"{m['heldout_bits_per_base_before']:.3f} → {m['heldout_bits_per_base']:.3f}"),
        ("held-out bits/base, order-0 / order-3 Markov", f"{m['heldout_bits_per_base_order0_markov']:.3f} / {m['heldout_bits_per_base_order3_markov']:.3f}"),
        ("orangutan mtDNA bits/base, model / order-3 Markov", f"{m['orangutan_bits_per_base']:.3f} / {m['orangutan_bits_per_base_order3_markov']:.3f}"),
        ("recurrent decode vs forward, max |Δlogit|", f"{m['decode_vs_forward_max_abs_logit_diff']:.2e}"),
        ("export → reload, max |Δlogit|", f"{m['reload_max_abs_logit_diff']:.2e}"),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return (
        "# mamba-bio-audio quickstart\n\n"
        f"Model preset `{m['preset']}` pretrained on the first 90 % of the human mitochondrial genome (bundled, "
        "16,569 bp); held out: its last 10 %, and the orangutan mitochondrial genome. Bits per base are next-base "
        "cross entropy / ln 2; the Markov baselines are add-one-smoothed k-mer counts of the training part.\n\n"
        "| metric | value |\n|---|---|\n" + table + "\n\n![training loss](loss.png)\n\n"
        "Files: `model/` (config.json + model.safetensors), `sample.fa` (a sampled continuation), `metrics.json`.\n"
    )


def _summary(m: dict, out: Path) -> str:
    return (
        f"quickstart: {m['steps']} steps in {m['train_seconds']:.0f} s; held-out {m['heldout_bits_per_base']:.3f} bits/base "
        f"(order-3 Markov {m['heldout_bits_per_base_order3_markov']:.3f}); report: {out / 'report.md'}"
    )
