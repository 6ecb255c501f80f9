"""Autoregressive decoding with ``mamba_ssm.utils.generation`` semantics, plus validated arguments.

The prompt goes through the model in one parallel pass (which also fills every layer's recurrent state), then
one token per call reuses the state: constant time and memory per new token. Works with any model whose
``forward(input_ids, inference_params=..., num_last_tokens=1)`` returns an object with ``.logits``
(batch, L, vocab) and that has ``allocate_inference_cache(batch_size, max_seqlen)``.

Sampling (:func:`sample`): ``top_k == 1`` is greedy (the default) and ignores every other knob. Otherwise the
logits are divided by ``temperature``, restricted to the ``top_k`` best (``top_k == 0``: the whole vocabulary),
then nucleus-filtered to the smallest set whose probability reaches ``top_p`` (``top_p == 0`` or ``1``:
off), then tokens with probability below ``min_p`` × the best token's are dropped (``min_p == 0``: off).
``repetition_penalty`` (CTRL) divides positive and multiplies negative logits of tokens already in the sequence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

__all__ = ["InferenceParams", "GenerateOutput", "generate", "sample", "modify_logit_for_repetition_penalty"]


@dataclass
class InferenceParams:
    """Decoding state shared by every layer (``mamba_ssm.utils.generation.InferenceParams``).

    ``seqlen_offset`` is the number of tokens already consumed (0: the next forward is a fresh prompt);
    ``key_value_memory_dict`` maps layer_idx to that layer's (conv_state, ssm_state). Layers allocate their
    state lazily; ``model.allocate_inference_cache`` preallocates it.
    """

    max_seqlen: int
    max_batch_size: int
    seqlen_offset: int = 0
    key_value_memory_dict: dict = field(default_factory=dict)

    def reset(self, max_seqlen: int, max_batch_size: int) -> None:
        """Start a new sequence; states are overwritten by the next prompt (seqlen_offset 0)."""
        self.max_seqlen = max_seqlen
        self.max_batch_size = max_batch_size
        self.seqlen_offset = 0


@dataclass
class GenerateOutput:
    """sequences (batch, L_out) int64, prompt included; scores: one (batch, vocab) tensor per generated token,
    the raw next-token logits before penalty, temperature and filtering (None unless ``output_scores``)."""

    sequences: torch.Tensor
    scores: tuple[torch.Tensor, ...] | None = None


def modify_logit_for_repetition_penalty(logits: torch.Tensor, prev_output_tokens: torch.Tensor,
                                        repetition_penalty: float = 1.0) -> torch.Tensor:
    """CTRL penalty, in place on logits (batch, vocab) for the ids in prev_output_tokens (batch, L)."""
    if repetition_penalty == 1.0:
        return logits
    score = torch.gather(logits, 1, prev_output_tokens)
    score = torch.where(score < 0, score * repetition_penalty, score / repetition_penalty)
    logits.scatter_(1, prev_output_tokens, score)
    return logits


def _top_p_filter_(logits: torch.Tensor, top_p: float) -> None:
    if top_p <= 0.0 or top_p >= 1.0:
        return
    sorted_logits, sorted_indices = torch.sort(logits, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)  # never removes the best token
    logits.masked_fill_(remove_sorted.scatter(1, sorted_indices, remove_sorted), float("-inf"))


def _min_p_filter_(logits: torch.Tensor, min_p: float) -> None:
    if min_p <= 0.0:
        return
    probs = logits.softmax(dim=-1)
    logits.masked_fill_(probs < min_p * probs.max(dim=-1, keepdim=True).values, float("-inf"))


def sample(logits: torch.Tensor, top_k: int = 1, top_p: float = 0.0, min_p: float = 0.0, temperature: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row from logits (batch, vocab) → (batch,) int64 (see the module docstring)."""
    if top_k == 1:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    indices = None
    if 0 < top_k < logits.shape[-1]:
        logits, indices = torch.topk(logits, top_k, dim=-1)
    _top_p_filter_(logits, top_p)
    _min_p_filter_(logits, min_p)
    choice = torch.multinomial(logits.softmax(dim=-1), num_samples=1, generator=generator).squeeze(-1)
    return choice if indices is None else indices.gather(1, choice[:, None]).squeeze(-1)


def check_sampling_arguments(input_ids, max_length, temperature, top_k, top_p, min_p, repetition_penalty, eos_token_id,
                     teacher_outputs) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype.is_floating_point or input_ids.is_complex() \
            or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must be an integer tensor (batch, prompt_len); got "
                         f"{getattr(input_ids, 'dtype', type(input_ids).__name__)}")
    if input_ids.dim() != 2 or input_ids.numel() == 0:
        raise ValueError("input_ids must be a non-empty (batch, prompt_len) tensor; "
                         f"got shape {tuple(input_ids.shape)}")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length <= input_ids.shape[1]:
        raise ValueError(f"max_length (prompt included) must be an integer > the prompt length {input_ids.shape[1]}; "
                         f"got {max_length!r}")
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0; got {temperature!r}")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (1: greedy, 0: whole vocabulary); got {top_k!r}")
    if not (isinstance(top_p, (int, float)) and 0.0 <= top_p <= 1.0):
        raise ValueError(f"top_p must be in [0, 1] (0 or 1: no nucleus filtering); got {top_p!r}")
    if not (isinstance(min_p, (int, float)) and 0.0 <= min_p < 1.0):
        raise ValueError(f"min_p must be in [0, 1) (0: off); got {min_p!r}")
    if not (isinstance(repetition_penalty, (int, float)) and math.isfinite(repetition_penalty)
            and repetition_penalty > 0):
        raise ValueError(f"repetition_penalty must be a finite number > 0 (1: off); got {repetition_penalty!r}")
    if eos_token_id is not None and (not isinstance(eos_token_id, int) or isinstance(eos_token_id, bool)):
        raise ValueError(f"eos_token_id must be an integer or None; got {eos_token_id!r}")
    if teacher_outputs is not None:
        if (not isinstance(teacher_outputs, torch.Tensor) or teacher_outputs.dim() != 2
                or teacher_outputs.dtype.is_floating_point or teacher_outputs.shape[0] != input_ids.shape[0]):
            raise ValueError("teacher_outputs must be an integer tensor (batch, length) with the batch of input_ids; "
                             f"got {getattr(teacher_outputs, 'shape', teacher_outputs)!r}")


@torch.inference_mode()
def generate(model, input_ids: torch.Tensor, max_length: int, temperature: float = 1.0, top_k: int = 1,
             top_p: float = 0.0, min_p: float = 0.0, repetition_penalty: float = 1.0,
             eos_token_id: int | None = None, teacher_outputs: torch.Tensor | None = None,
             generator: torch.Generator | None = None, return_dict_in_generate: bool = False,
             output_scores: bool = False):
    """Extend input_ids (batch, prompt_len) int64 to at most ``max_length`` tokens (prompt included).

    ``teacher_outputs`` (batch, T), whole sequences prompt included, forces token t to ``teacher_outputs[:, t]``
    for t < T instead of sampling (so ``scores`` can be compared with one forward pass). Once a row emits
    ``eos_token_id`` its later tokens are ``eos_token_id``; decoding stops when every row has. Sampling draws
    from ``generator`` when given (seeded, reproducible). Scores cover the model's real vocabulary
    (``model.config.vocab_size`` when the model has a config, not the padding rows), and so does sampling.

    Returns sequences (batch, L_out) int64, or a :class:`GenerateOutput` when ``return_dict_in_generate``.
    """
    check_sampling_arguments(input_ids, max_length, temperature, top_k, top_p, min_p, repetition_penalty, eos_token_id,
                     teacher_outputs)
    config = getattr(model, "config", None)
    vocab_size = getattr(config, "vocab_size", None)
    embedding_rows = getattr(config, "padded_vocab_size", vocab_size)
    if embedding_rows is not None and (input_ids.min() < 0 or input_ids.max() >= embedding_rows):
        raise ValueError(f"input_ids must be token ids in [0, {embedding_rows}); got values in "
                         f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    device = next(model.parameters()).device
    input_ids = input_ids.to(device=device, dtype=torch.long)
    batch_size = input_ids.shape[0]
    if teacher_outputs is not None:
        teacher_outputs = teacher_outputs.to(device=device, dtype=torch.long)

    inference_params = InferenceParams(max_seqlen=max_length, max_batch_size=batch_size)
    inference_params.key_value_memory_dict = model.allocate_inference_cache(batch_size, max_length)
    finished = torch.zeros(batch_size, dtype=torch.bool, device=device)
    sequences, scores = input_ids, []
    last_tokens = input_ids
    while sequences.shape[1] < max_length and not bool(finished.all()):
        logits = model(last_tokens, inference_params=inference_params, num_last_tokens=1).logits[:, -1]
        if vocab_size is not None:
            logits = logits[:, :vocab_size]
        scores.append(logits)
        inference_params.seqlen_offset += last_tokens.shape[1]
        position = sequences.shape[1]
        if teacher_outputs is not None and position < teacher_outputs.shape[1]:
            tokens = teacher_outputs[:, position]
        else:
            penalised = modify_logit_for_repetition_penalty(logits.clone(), sequences, repetition_penalty)
            tokens = sample(penalised, top_k=top_k, top_p=top_p, min_p=min_p, temperature=temperature,
                            generator=generator)
        if eos_token_id is not None:
            tokens = tokens.masked_fill(finished, eos_token_id)
            finished |= tokens == eos_token_id
        last_tokens = tokens[:, None]
        sequences = torch.cat([sequences, last_tokens], dim=1)
    if not return_dict_in_generate:
        return sequences
    return GenerateOutput(sequences=sequences, scores=tuple(scores) if output_scores else None)
