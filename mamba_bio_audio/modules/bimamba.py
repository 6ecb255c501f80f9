"""``BiMamba``: the bidirectional mixer of Caduceus (``BiMambaWrapper``): a Mamba over the sequence and a second
Mamba over the reversed sequence, whose output is flipped back and combined with the first.

out = mamba_fwd(x) ⊕ flip_L(mamba_rev(flip_L(x))), ⊕ = + ("add") or · ("ew_multiply"). With ``weight_tie`` the
reverse Mamba shares the forward one's ``in_proj`` and ``out_proj`` (weights and biases: most of the parameters);
its conv, ``x_proj``, ``dt_proj``, ``A_log`` and ``D`` are its own. Every output position sees the whole
sequence, so the mixer is not causal and has no decoding step. ``piece_length`` runs each direction over the
sequence in pieces of that many tokens (any positive integer), passing its (conv, SSM) state from piece to piece:
the same output as one pass, with the scan's working memory bounded by the piece. Unlike ``MambaConfig.chunk_size``
(whole-model chunks recomputed in backward) nothing is recomputed: autograd keeps every piece's activations.
"""
from __future__ import annotations

import torch
from torch import nn

from mamba_bio_audio.modules.mamba import Mamba

__all__ = ["BiMamba", "TIED_PROJECTIONS"]

TIED_PROJECTIONS = ("in_proj.weight", "in_proj.bias", "out_proj.weight", "out_proj.bias")


def _run(mamba: Mamba, hidden_states: torch.Tensor, piece_length: int | None) -> torch.Tensor:
    """mamba over hidden_states (batch, L, d_model), in pieces of ``piece_length`` tokens with state passing."""
    if piece_length is None or hidden_states.shape[1] <= piece_length:
        return mamba(hidden_states)
    state, outs = None, []
    for piece in hidden_states.split(piece_length, dim=1):
        out, state = mamba.forward_with_state(piece, state)
        outs.append(out)
    return torch.cat(outs, dim=1)


class BiMamba(nn.Module):
    """(batch, L, d_model) → (batch, L, d_model) in the activation dtype; parameters fp32 (A_log, D always).

    Sub-modules ``mamba_fwd`` and ``mamba_rev`` (None when not ``bidirectional``) carry upstream's names;
    ``mamba_kwargs`` go to both :class:`~mamba_bio_audio.modules.mamba.Mamba`.
    """

    def __init__(self, d_model: int, bidirectional: bool = True, bidirectional_strategy: str = "add",
                 bidirectional_weight_tie: bool = True, piece_length: int | None = None, **mamba_kwargs):
        super().__init__()
        if bidirectional_strategy not in ("add", "ew_multiply"):
            raise ValueError(f"bidirectional_strategy must be 'add' or 'ew_multiply'; got {bidirectional_strategy!r}")
        self.bidirectional = bidirectional
        self.bidirectional_strategy = bidirectional_strategy
        self.piece_length = piece_length
        self.mamba_fwd = Mamba(d_model, **mamba_kwargs)
        self.mamba_rev = Mamba(d_model, **mamba_kwargs) if bidirectional else None
        if bidirectional and bidirectional_weight_tie:
            for name in ("in_proj", "out_proj"):
                shared, tied = getattr(self.mamba_fwd, name), getattr(self.mamba_rev, name)
                tied.weight = shared.weight
                tied.bias = shared.bias

    def forward(self, hidden_states: torch.Tensor, inference_params=None) -> torch.Tensor:
        """hidden_states (batch, L, d_model) → (batch, L, d_model). ``inference_params`` must be None: a
        bidirectional mixer cannot decode token by token."""
        if inference_params is not None:
            raise ValueError("inference_params: a bidirectional mixer reads the whole sequence; it has no "
                             "decoding state (use a causal Mamba for generation)")
        out = _run(self.mamba_fwd, hidden_states, self.piece_length)
        if self.mamba_rev is None:
            return out
        out_rev = _run(self.mamba_rev, hidden_states.flip(1), self.piece_length).flip(1)
        return out + out_rev if self.bidirectional_strategy == "add" else out * out_rev
