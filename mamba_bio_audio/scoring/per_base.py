"""Per-base log-likelihoods and entropies of one sequence.

* Causal LMs: base t scored by the logits at t - 1 (log p(x_t | x_<t)); base 0 has no context and gets NaN.
  Mamba LMs run window by window from the state the previous window left
  (:meth:`~mamba_bio_audio.models.MixerModel.forward_with_state`), so a chromosome of any length is scored
  in the memory of one window and equals one pass over it; models without a state (Transformer++) need the
  sequence to fit one window.
* Masked LMs (Caduceus): the masked marginal: base t is replaced by [MASK] in a window of ``window`` bases
  around it (centred, shifted inward at the ends) and scored by the logits at t; the windows of neighbouring
  bases overlap, ``batch_size`` of them run at once. Costs one window per base.

Log-likelihoods (nats) and entropies (nats) come from the log-softmax over the model's whole padded
vocabulary, fp32.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mamba_bio_audio.scoring.models import device_of
from mamba_bio_audio.tokenizers.nucleotide import DNA_VOCAB

__all__ = ["causal_scores", "iter_causal_scores", "masked_scores"]

MASK_ID = DNA_VOCAB["[MASK]"]


def _ll_entropy(logp: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """logp (n, V) fp32 predicting targets (n,) → (log-likelihoods (n,), entropies (n,)) fp32 numpy."""
    ll = logp.gather(-1, targets[:, None])[:, 0]
    entropy = -(logp.exp() * logp).sum(-1)
    return ll.float().cpu().numpy(), entropy.float().cpu().numpy()


@torch.inference_mode()
def iter_causal_scores(model, ids: np.ndarray | torch.Tensor,
                       window: int = 65536) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Score ids (L,) int with the causal LM ``model`` window by window: yields (start, log-likelihoods (n,),
    entropies (n,)) fp32 for bases [start, start + n), n ≤ ``window``. Memory: one window's activations."""
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}")
    device = device_of(model)
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=device).reshape(-1)
    length = ids.shape[0]
    backbone = model.backbone
    carries = getattr(backbone, "passes_state", False)
    if not carries and length > window:
        raise ValueError(f"this model carries no state from window to window (not a Mamba LM): the sequence of "
                         f"{length} bases must fit one window (--window {window}); raise --window to {length}")
    states, last = None, None  # last: the log-probabilities the previous window's last base gives the next
    for start in range(0, length, window):
        chunk = ids[start:start + window]
        if carries:
            hidden, states = backbone.forward_with_state(chunk[None], states)
        else:
            hidden = backbone(chunk[None])
        logp = torch.log_softmax(model.lm_head(hidden)[0].float(), dim=-1)
        ll, entropy = _ll_entropy(logp[:-1], chunk[1:])
        if last is None:
            first_ll, first_entropy = np.float32(np.nan), np.float32(np.nan)
        else:
            first_ll, first_entropy = (v[0] for v in _ll_entropy(last[None], chunk[:1]))
        yield start, np.concatenate([[first_ll], ll]).astype(np.float32), \
            np.concatenate([[first_entropy], entropy]).astype(np.float32)
        last = logp[-1]


def causal_scores(model, ids: np.ndarray | torch.Tensor, window: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """(log-likelihoods (L,), entropies (L,)) fp32 of ids (L,) under the causal LM ``model``, computed in
    windows of ``window`` bases (see :func:`iter_causal_scores`)."""
    pieces = list(iter_causal_scores(model, ids, window))
    if not pieces:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate([p[1] for p in pieces]), np.concatenate([p[2] for p in pieces])


def masked_window_start(position: int, window: int, length: int) -> int:
    """Start of the ``window`` bases scored around ``position`` in a sequence of ``length`` (centred, shifted
    inward at the ends)."""
    return max(0, min(position - window // 2, length - window))


@torch.inference_mode()
def masked_scores(model, ids: np.ndarray | torch.Tensor, window: int = 512,
                  batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(log-likelihoods (L,), entropies (L,)) fp32 of ids (L,) under the masked LM ``model``: the masked marginal
    of every base in its own window (see the module docstring)."""
    device = device_of(model)
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.long, device=device).reshape(-1)
    length = ids.shape[0]
    width = min(window, length)
    lls, entropies = [], []
    for lo in range(0, length, batch_size):
        positions = list(range(lo, min(lo + batch_size, length)))
        starts = [masked_window_start(p, width, length) for p in positions]
        batch = torch.stack([ids[s:s + width] for s in starts]).clone()
        offsets = torch.tensor([p - s for p, s in zip(positions, starts)], device=device)
        rows = torch.arange(len(positions), device=device)
        batch[rows, offsets] = MASK_ID
        logits = model(batch).logits[rows, offsets].float()
        ll, entropy = _ll_entropy(torch.log_softmax(logits, dim=-1), ids[positions])
        lls.append(ll)
        entropies.append(entropy)
    if not lls:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(lls), np.concatenate(entropies)
