"""What the synthetic-task studies share (copying, induction, ablation): small models of a stated size, a plain
seeded training loop on freshly drawn batches, and accuracy on the answer positions (whole sequences, or the
last token of a very long one through chunked state passing, memory flat in length).

Batches come from a ``draw(rng, batch, length) -> (inputs, targets)`` generator of
:mod:`mamba_bio_audio.data_prep.synthetic` (int64 numpy (batch, L), targets -100 except at the answers). Models
are built on :func:`study_device` (the GPU when there is one, so ``--full`` runs where it was sized to run) and
batches go to the model's device; parameters and activations stay fp32.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from mamba_bio_audio.config import MambaConfig, TransformerConfig
from mamba_bio_audio.models import MambaLMHeadModel
from mamba_bio_audio.models.chunked import run_chunks
from mamba_bio_audio.models.transformer import TransformerLMHeadModel
from mamba_bio_audio.targets import counted_mask

__all__ = ["answer_accuracy", "last_token_accuracy", "mamba_lm", "n_params", "progress", "study_device", "train",
           "transformer_lm"]

Draw = Callable[[np.random.Generator, int, int], tuple[np.ndarray, np.ndarray]]


def study_device() -> torch.device:
    """Where the studies' models run: the first CUDA device when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batch(model: torch.nn.Module, arrays) -> tuple[torch.Tensor, ...]:
    device = next(model.parameters()).device
    return tuple(torch.from_numpy(a).to(device) for a in arrays)


def mamba_lm(vocab_size: int, d_model: int, n_layer: int, seed: int, **ssm_cfg) -> MambaLMHeadModel:
    """A Mamba LM over ``vocab_size`` tokens (no padding of the vocabulary, no PAD id: every target counts),
    ``ssm_cfg`` the mixer's settings and ablation switches."""
    torch.manual_seed(seed)
    return MambaLMHeadModel(MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=vocab_size,
                                        pad_vocab_size_multiple=1, pad_token_id=None, ssm_cfg=ssm_cfg),
                            device=study_device())


def transformer_lm(vocab_size: int, d_model: int, n_layer: int, n_head: int, d_intermediate: int,
                   seed: int) -> TransformerLMHeadModel:
    """The Transformer++ baseline (RoPE, SwiGLU, RMSNorm) over ``vocab_size`` tokens, no PAD id."""
    torch.manual_seed(seed)
    return TransformerLMHeadModel(TransformerConfig(d_model=d_model, n_layer=n_layer, n_head=n_head,
                                                    d_intermediate=d_intermediate, vocab_size=vocab_size,
                                                    pad_vocab_size_multiple=1, pad_token_id=None),
                                  device=study_device())


def n_params(model: torch.nn.Module) -> int:
    """Trainable parameters (tied ones once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def progress() -> Progress:
    """A rich progress display for a study's runs (to stderr)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), transient=False)


def train(model: torch.nn.Module, draw: Draw, *, steps: int, batch: int, length: int, lr: float, seed: int,
          bar: Progress | None = None, label: str = "train") -> dict:
    """Train ``model`` for ``steps`` AdamW steps (betas 0.9, 0.98, no weight decay, 10 % linear warmup then
    constant ``lr``, gradient clipping 1.0) on batches freshly drawn from ``draw`` with a generator seeded by
    ``seed``; the loss counts the answer positions only. Returns ``{"seconds", "final_loss"}`` (the mean of the
    last 10 % of the steps' losses) and leaves the model in eval mode."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    task = bar.add_task(label, total=steps) if bar is not None else None
    losses, start = [], time.perf_counter()
    model.train()
    for _ in range(steps):
        inputs, targets = _batch(model, draw(rng, batch, length))
        loss = model(inputs, targets=targets).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(task, advance=1)
    model.eval()
    tail = losses[-max(1, steps // 10):]
    return {"seconds": time.perf_counter() - start, "final_loss": float(np.mean(tail))}


@torch.no_grad()
def answer_accuracy(model: torch.nn.Module, draw: Draw, *, n: int, length: int, seed: int,
                    batch: int = 32) -> float:
    """Fraction of answer tokens predicted exactly (argmax) over ``n`` sequences of ``length`` drawn with
    ``seed``, in one forward pass per batch."""
    rng = np.random.default_rng(seed)
    right = total = 0
    for start in range(0, n, batch):
        inputs, targets = _batch(model, draw(rng, min(batch, n - start), length))
        logits = model(inputs).logits
        mask = counted_mask(targets)
        right += int((logits.argmax(-1)[mask] == targets[mask]).sum())
        total += int(mask.sum())
    return right / max(total, 1)


def _last_logits(model, hidden_states: torch.Tensor) -> torch.Tensor:
    return model.lm_head(hidden_states[:, -1])


@torch.no_grad()
def last_token_accuracy(model: torch.nn.Module, draw: Draw, *, n: int, length: int, seed: int, batch: int,
                        chunk: int | None = None) -> float:
    """Accuracy of the last position's argmax (the answer of an induction-heads sequence) over ``n``
    sequences of ``length`` drawn with ``seed``. With ``chunk`` (a Mamba LM) the sequence runs in chunks of
    ``chunk`` tokens passing every layer's state (:func:`mamba_bio_audio.models.chunked.run_chunks`), so memory
    does not grow with ``length``; without it, one forward pass (the Transformer++)."""
    rng = np.random.default_rng(seed)
    right = 0
    for start in range(0, n, batch):
        inputs, targets = _batch(model, draw(rng, min(batch, n - start), length))
        if chunk is not None and length > chunk:
            logits = run_chunks(model, inputs, chunk, _last_logits)[0][-1]
        else:
            logits = model(inputs, num_last_tokens=1).logits[:, -1]
        right += int((logits.argmax(-1) == targets[:, -1]).sum())
    return right / n
