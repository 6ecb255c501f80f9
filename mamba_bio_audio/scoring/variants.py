"""Variant effect scores: the log-likelihood ratio of the alternative allele against the reference in a window
of the reference around the variant (SNVs and small indels; split multi-allelic records first).

The window of a variant at 0-based ``pos`` with a reference allele of r bases (:func:`variant_window`): with
h = window // 2, it starts at the multiple of h for which the variant lies in the middle half,
``start = max(0, ((pos - window // 4) // h) * h)``, and ends at ``min(start + window, chromosome length)``.
Variants close to each other share their window. The alternative window is the reference window with the r
reference bases replaced by the alternative allele.

* Causal LMs: LLR = LL(alternative window) - LL(reference window), LL(w) = sum over t >= 1 of
  log p(w_t | w_<t) (the window's first base has no context). The bases before the variant are the same in both
  windows and cancel, so with a Mamba LM (**prefix reuse**) the reference window runs once per window, split at
  the variants' positions, keeping the state (and the next-base prediction) at each; every alternative then
  runs only its suffix (the allele and the rest of the window) from that state, batched. The reference's
  suffix log-likelihood comes from the same single pass. A variant costs O(suffix), its window O(window) once.
  Dense variants would cut the reference pass into many short passes, each with a fixed cost, so states are
  kept only ``min_piece`` bases apart (default window/16): a variant between two kept states re-runs at most
  that many reference bases before its allele.
  :func:`naive_llr` rescores both full windows (the definition; models without a state use it).
* Masked LMs (Caduceus): the masked marginal of an SNV: the variant base is replaced by [MASK] in the reference
  window and LLR = log p(alt) - log p(ref) at that position. Indels have no masked marginal.
* ``rc=True``: the same on the reverse-complement strand (the window and the alleles reverse-complemented), and
  the LLR is the mean of the two strands' (GPN).

Log-probabilities: log-softmax over the model's padded vocabulary in fp32, summed in fp64.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from mamba_bio_audio.scoring.models import device_of, is_causal
from mamba_bio_audio.scoring.per_base import MASK_ID
from mamba_bio_audio.scoring.strands import rc_average, reverse_complement_ids
from mamba_bio_audio.tokenizers.nucleotide import DNA_VOCAB

__all__ = ["Variant", "VariantScores", "naive_llr", "score_variants", "variant_problem", "variant_window"]

PAD_ID = DNA_VOCAB["[PAD]"]


@dataclass(frozen=True)
class Variant:
    """One alternative allele: ``pos`` the 0-based position of the first reference base, ``ref`` and ``alt``
    upper-case bases (VCF style: indels keep their anchor base)."""

    pos: int
    ref: str
    alt: str


class VariantScores(NamedTuple):
    """llr (n,) float64: the scores (the strand mean with rc); forward, reverse (n,) float64: each strand's
    (reverse None without rc)."""

    llr: np.ndarray
    forward: np.ndarray
    reverse: np.ndarray | None


def variant_window(pos: int, window: int, length: int) -> tuple[int, int]:
    """(start, end) of the reference window of a variant at ``pos`` on a sequence of ``length`` bases."""
    half = max(1, window // 2)
    start = max(0, ((pos - window // 4) // half) * half)
    return start, min(start + window, length)


def variant_problem(variant: Variant, window: int, length: int, causal: bool, rc: bool) -> str | None:
    """Why ``variant`` cannot be scored with these settings (a short reason), or None."""
    if variant.pos < 0 or variant.pos + len(variant.ref) > length:
        return "outside the sequence"
    if max(len(variant.ref), len(variant.alt)) > max(1, window // 4):
        return f"allele longer than window/4 ({window // 4} bases)"
    if not causal and (len(variant.ref) != 1 or len(variant.alt) != 1):
        return "indel: a masked model scores SNVs only"
    start, end = variant_window(variant.pos, window, length)
    if variant.pos - start < 1 or (rc and end - variant.pos - len(variant.ref) < 1):
        return "no base of context on one side"
    return None


def _ids(bases: str) -> np.ndarray:
    return np.array([DNA_VOCAB.get(b, DNA_VOCAB["N"]) for b in bases], dtype=np.int64)


def _token_ll(logp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logp.gather(-1, targets[..., None])[..., 0]


def _stack_states(states: list[list]) -> list:
    return [(torch.cat([s[i][0] for s in states]), torch.cat([s[i][1] for s in states]))
            for i in range(len(states[0]))]


def snapshot_points(positions: list[int], min_piece: int) -> list[int]:
    """Where the reference pass keeps its state: the first variant position, then every variant position at
    least ``min_piece`` bases after the last point kept (``min_piece`` <= 1: every variant position)."""
    points: list[int] = []
    for q in sorted(set(positions)):
        if not points or q - points[-1] >= min_piece:
            points.append(q)
    return points


@torch.inference_mode()
def _causal_window(model, ref: torch.Tensor, edits: list[tuple[int, int, np.ndarray]], batch_size: int,
                   chunk: int, min_piece: int) -> list[float]:
    """Prefix-reuse LLRs of ``edits`` (relative position q >= 1, reference length r, alternative ids) in the
    reference window ``ref`` (n,) int64 (see the module docstring). Each alternative runs from the state kept at
    the last snapshot point b <= q (:func:`snapshot_points`): the reference bases [b, q) again (their terms are
    left out), then the allele and the rest of the window."""
    backbone, head = model.backbone, model.lm_head
    n = ref.shape[0]
    cuts = snapshot_points([q for q, _, _ in edits], min_piece)
    kept = set(cuts)
    bounds = sorted(kept | {0, n} | set(range(0, n, chunk)))
    at: dict[int, tuple[list, torch.Tensor]] = {}
    ref_ll = torch.zeros(n, dtype=torch.float64, device=ref.device)
    states, last = None, None
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        if lo in kept:
            at[lo] = (states, last)
        hidden, states = backbone.forward_with_state(ref[None, lo:hi], states)
        logp = torch.log_softmax(head(hidden)[0].float(), dim=-1)
        if last is not None:
            ref_ll[lo] = _token_ll(last, ref[lo])
        ref_ll[lo + 1:hi] = _token_ll(logp[:-1], ref[lo + 1:hi]).double()
        last = logp[-1]
    suffix = ref_ll.flip(0).cumsum(0).flip(0).cpu()  # suffix[q] = sum of ref_ll[q:]; on the host: no sync per variant
    base = [cuts[bisect_right(cuts, q) - 1] for q, _, _ in edits]
    scores = [0.0] * len(edits)
    order = sorted(range(len(edits)), key=lambda i: (base[i], edits[i][0]))  # similar tail lengths per batch
    for lo in range(0, len(edits), batch_size):
        rows = order[lo:lo + batch_size]
        tails = [torch.cat([ref[base[i]:edits[i][0]], torch.as_tensor(edits[i][2], device=ref.device),
                            ref[edits[i][0] + edits[i][1]:]]) for i in rows]
        tokens = pad_sequence(tails, batch_first=True, padding_value=PAD_ID)
        hidden, _ = backbone.forward_with_state(tokens, _stack_states([at[base[i]][0] for i in rows]))
        logp = torch.log_softmax(head(hidden).float(), dim=-1)
        first = torch.stack([at[base[i]][1] for i in rows])  # predicts each tail's first token
        ll = torch.cat([_token_ll(first, tokens[:, 0])[:, None], _token_ll(logp[:, :-1], tokens[:, 1:])],
                       dim=1).double().cpu()
        for j, (i, t) in enumerate(zip(rows, tails)):
            skip = edits[i][0] - base[i]  # the reference bases [b, q): the same terms in both windows
            scores[i] = float(ll[j, skip:t.shape[0]].sum() - suffix[edits[i][0]])
    return scores


@torch.inference_mode()
def _causal_ll(model, windows: list[np.ndarray], batch_size: int) -> list[float]:
    """LL of each window (sum over t >= 1 of log p(w_t | w_<t)), each window in one full pass."""
    device = device_of(model)
    out = []
    for b in range(0, len(windows), batch_size):
        part = windows[b:b + batch_size]
        width = max(len(w) for w in part)
        tokens = torch.full((len(part), width), PAD_ID, dtype=torch.long, device=device)
        for i, w in enumerate(part):
            tokens[i, :len(w)] = torch.as_tensor(w)
        logp = torch.log_softmax(model(tokens).logits.float(), dim=-1)
        ll = _token_ll(logp[:, :-1], tokens[:, 1:]).double()
        out += [float(ll[i, :len(w) - 1].sum()) for i, w in enumerate(part)]
    return out


def naive_llr(model, ref: np.ndarray, edits: list[tuple[int, int, np.ndarray]], batch_size: int = 8) -> list[float]:
    """The definition, computed as the field's tools do: for every variant, LL(alternative window) -
    LL(reference window), both windows rescored in full (2 windows per variant)."""
    ref = np.asarray(ref, dtype=np.int64)
    pairs = [w for q, r, alt in edits for w in (np.concatenate([ref[:q], alt, ref[q + r:]]), ref)]
    lls = _causal_ll(model, pairs, 2 * batch_size)
    return [lls[2 * i] - lls[2 * i + 1] for i in range(len(edits))]


@torch.inference_mode()
def _masked_window(model, ref: torch.Tensor, edits: list[tuple[int, int, np.ndarray]],
                   batch_size: int) -> list[float]:
    scores = []
    for b in range(0, len(edits), batch_size):
        part = edits[b:b + batch_size]
        tokens = ref[None].repeat(len(part), 1)
        rows = torch.arange(len(part), device=ref.device)
        qs = torch.tensor([q for q, _, _ in part], device=ref.device)
        tokens[rows, qs] = MASK_ID
        logp = torch.log_softmax(model(tokens).logits[rows, qs].float(), dim=-1)
        alt = torch.tensor([int(a[0]) for _, _, a in part], device=ref.device)
        scores += (_token_ll(logp, alt) - _token_ll(logp, ref[qs])).double().tolist()
    return scores


def _strand(model, reference, variants: list[Variant], window: int, length: int, rc: bool, naive: bool,
            batch_size: int, chunk: int, min_piece: int) -> np.ndarray:
    causal = is_causal(model)
    carries = causal and getattr(model.backbone, "passes_state", False)
    device = device_of(model)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, v in enumerate(variants):
        groups[variant_window(v.pos, window, length)].append(i)
    out = np.full(len(variants), np.nan)
    for (start, end), members in groups.items():
        ref = np.asarray(reference[start:end], dtype=np.int64)
        edits = []
        for i in members:
            v = variants[i]
            q, r, alt = v.pos - start, len(v.ref), _ids(v.alt)
            if rc:
                q, alt = (end - start) - q - r, reverse_complement_ids(alt)
            edits.append((q, r, alt))
        if rc:
            ref = reverse_complement_ids(ref)
        if not causal:
            scores = _masked_window(model, torch.as_tensor(ref, device=device), edits, batch_size)
        elif naive or not carries:
            scores = naive_llr(model, ref, edits, batch_size)
        else:
            scores = _causal_window(model, torch.as_tensor(ref, device=device), edits, batch_size, chunk, min_piece)
        out[members] = scores
    return out


def score_variants(model, reference, variants: list[Variant], window: int, *, length: int | None = None,
                   rc: bool = False, naive: bool = False, batch_size: int = 8, chunk: int = 65536,
                   min_piece: int | None = None) -> VariantScores:
    """LLRs of ``variants`` (on one sequence) in input order.

    ``reference[a:b]`` gives the ids (b - a,) of bases [a, b) (a numpy array or an indexed FASTA sequence);
    ``length`` its length (default ``len(reference)``). ``naive`` rescores full windows (the definition; for
    benchmarks). ``batch_size`` alternatives (or windows) run at once; ``chunk`` bounds the bases of one
    pass of the reference window; ``min_piece`` (default window // 16) the shortest piece of the reference
    pass between two kept states (1: a state at every variant position; larger: fewer, longer passes, each
    alternative re-running at most that many reference bases). A variant :func:`variant_problem` refuses
    raises ValueError."""
    length = len(reference) if length is None else int(length)
    causal = is_causal(model)
    for v in variants:
        why = variant_problem(v, window, length, causal, rc)
        if why:
            raise ValueError(f"variant at {v.pos} {v.ref}>{v.alt}: {why}")
    min_piece = max(1, window // 16) if min_piece is None else int(min_piece)
    forward = _strand(model, reference, variants, window, length, False, naive, batch_size, chunk, min_piece)
    if not rc:
        return VariantScores(forward, forward, None)
    reverse = _strand(model, reference, variants, window, length, True, naive, batch_size, chunk, min_piece)
    return VariantScores(rc_average(forward, reverse), forward, reverse)
