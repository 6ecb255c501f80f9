"""Autoregressive decoding: one sampler for every generative model (DNA and audio), and ``generate`` with
``mamba_ssm.utils.generation`` semantics on top of it.

The decoding contract every generative model (Mamba and Transformer++ LMs, SaShiMi) offers:

* ``allocate_inference_cache(batch_size, max_seqlen=None)`` → a zeroed state;
* ``prefill(input_ids (batch, T), state)`` → (logits (batch, T, V), state): the prompt in one parallel pass,
  which also fills the state;
* ``step(input_ids (batch,), state)`` → (logits (batch, V), state): one recurrent step, constant time and
  memory per token.

``V`` may exceed ``config.vocab_size`` (padded embedding rows); decoding reads the first ``vocab_size`` logits.

:func:`generate` takes the positional arguments of ``mamba_ssm``'s ``GenerationMixin.generate`` (after the model),
by name, in order, with its defaults; the rest (``repetition_penalty``, ``eos_token_id``, ... as its ``decode``)
are keyword-only. :func:`sample_sequences` takes the shared sampling knobs (``top_k``, ``top_p``, ``min_p``,
``temperature``) in the same order with the same defaults; its own arguments are keyword-only.

Sampling (:func:`sample`): ``top_k == 1`` is greedy (the default) and ignores every other knob. Otherwise the
logits are divided by ``temperature``, restricted to the ``top_k`` best (``top_k == 0``: the whole vocabulary),
then nucleus-filtered to the smallest set whose probability reaches ``top_p`` (``top_p == 0`` or ``1``:
off), then tokens with probability below ``min_p`` × the best token's are dropped (``min_p == 0``: off).
``repetition_penalty`` (CTRL) divides positive and multiplies negative logits of tokens already in the sequence.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import torch

__all__ = ["GenerateOutput", "InferenceParams", "Samples", "generate", "modify_logit_for_repetition_penalty", "sample",
           "sample_sequences", "token_log_probs", "uses_fast_step"]


@dataclass
class InferenceParams:
    """Decoding state shared by every layer (``mamba_ssm.utils.generation.InferenceParams``).

    ``seqlen_offset`` is the number of tokens already consumed (0: the next forward is a fresh prompt);
    ``key_value_memory_dict`` maps layer_idx to that layer's (conv_state, ssm_state). Layers allocate their
    state lazily; ``model.allocate_inference_cache`` preallocates it. ``fast_step``: the fused CPU step over
    these states (:mod:`mamba_bio_audio.models.fast_decode`) that ``model.step`` takes where it applies, or None
    (``allocate_inference_cache(..., fast=False)``, or a model it does not handle): the generic step.
    """

    max_seqlen: int | None
    max_batch_size: int
    seqlen_offset: int = 0
    key_value_memory_dict: dict = field(default_factory=dict)
    fast_step: object | None = field(default=None, repr=False)

    def reset(self, max_seqlen: int, max_batch_size: int) -> None:
        """Start a new sequence; states are overwritten by the next prompt (seqlen_offset 0)."""
        self.max_seqlen = max_seqlen
        self.max_batch_size = max_batch_size
        self.seqlen_offset = 0


def uses_fast_step(state) -> bool:
    """Whether ``model.step`` on this decoding state (an ``InferenceParams`` or a SaShiMi state) takes the fused
    CPU step; it still falls back to the generic step for a call the fused step does not handle."""
    return getattr(state, "fast_step", None) is not None


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


@dataclass
class Samples:
    """tokens (n, P + length) int64, the prompt (P tokens) first; log_probs (n, P + length) fp32, the model's
    log p(tokens[:, t] | tokens[:, :t]) in nats at temperature 1 over the whole vocabulary (0 at t = 0, which
    has no context). All on the CPU."""

    tokens: torch.Tensor
    log_probs: torch.Tensor
    prefix_length: int

    @property
    def log_likelihood(self) -> torch.Tensor:
        """(n,) fp32: the sum of ``log_probs`` over the generated positions P ... P + length − 1."""
        return self.log_probs[:, self.prefix_length:].sum(dim=1)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """logits (..., V), tokens (...) int64 → log_softmax(logits)[tokens] (...) fp32."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens[..., None])[..., 0]


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


_LOG_PROB_CHUNK = 64  # tokens whose log-probabilities the decoding loop computes together


def _decode(model, prompt: torch.Tensor, length: int, choose, teacher: torch.Tensor | None = None,
            eos_token_id: int | None = None, keep_scores: bool = False):
    """The decoding loop. prompt (batch, P) int64 on the model's device; ``choose(logits (batch, V), sequence
    so far (batch, t)) -> (batch,)`` picks each new token. Returns tokens (batch, P + n), log_probs
    (batch, P + n) fp32 (see :class:`Samples`) and the raw next-token logits of every new token (when
    ``keep_scores``), n ≤ ``length`` (shorter once every row has emitted ``eos_token_id``)."""
    batch, prompt_length = prompt.shape
    vocab_size = model.config.vocab_size
    total = prompt_length + length
    state = model.allocate_inference_cache(batch, total)
    logits, state = model.prefill(prompt, state)
    logits = logits[..., :vocab_size]
    tokens = torch.empty(batch, total, dtype=torch.long, device=prompt.device)
    log_probs = torch.zeros(batch, total, dtype=torch.float32, device=prompt.device)
    tokens[:, :prompt_length] = prompt
    log_probs[:, 1:prompt_length] = token_log_probs(logits[:, :-1], prompt[:, 1:])
    next_logits, scores = logits[:, -1], []
    finished = torch.zeros(batch, dtype=torch.bool, device=prompt.device)
    end = total
    pending: list = []  # (logits, token) of the positions from `first` on whose log-probabilities are not written yet

    def write_log_probs(first: int) -> None:
        # one log_softmax per _LOG_PROB_CHUNK tokens instead of one per token: per-token overhead of the loop
        log_probs[:, first:first + len(pending)] = token_log_probs(torch.stack([p[0] for p in pending], dim=1),
                                                                   torch.stack([p[1] for p in pending], dim=1))
        pending.clear()

    for position in range(prompt_length, total):
        if keep_scores:
            scores.append(next_logits)
        if teacher is not None and position < teacher.shape[1]:
            token = teacher[:, position]
        else:
            token = choose(next_logits, tokens[:, :position])
        if eos_token_id is not None:
            token = token.masked_fill(finished, eos_token_id)
            finished |= token == eos_token_id
        tokens[:, position] = token
        pending.append((next_logits, token))
        if position + 1 == total or (eos_token_id is not None and bool(finished.all())):
            end = position + 1
            break
        if len(pending) == _LOG_PROB_CHUNK:
            write_log_probs(position + 1 - _LOG_PROB_CHUNK)
        next_logits, state = model.step(token, state)
        next_logits = next_logits[:, :vocab_size]
    if pending:
        write_log_probs(end - len(pending))
    return tokens[:, :end], log_probs[:, :end], scores


def _as_prompt(prompt, vocab_size: int, name: str = "prompt") -> torch.Tensor:
    prompt = torch.as_tensor(prompt)
    if prompt.dtype.is_floating_point or prompt.is_complex() or prompt.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids; got dtype {prompt.dtype}")
    if prompt.dim() != 2 or prompt.numel() == 0:
        raise ValueError(f"{name} must be a non-empty (n, P) tensor; got shape {tuple(prompt.shape)}")
    if prompt.min() < 0 or prompt.max() >= vocab_size:
        raise ValueError(f"{name} must hold token ids in [0, {vocab_size}); got values in "
                         f"[{int(prompt.min())}, {int(prompt.max())}]")
    return prompt.to(torch.long)


@torch.inference_mode()
def sample_sequences(model, prompt, length: int, top_k: int = 1, top_p: float = 0.0, min_p: float = 0.0,
                     temperature: float = 1.0, *, batch_size: int | None = None, allowed_tokens=None,
                     seed: int = 0) -> Samples:
    """Continue every row of prompt (n, P) int64 by ``length`` tokens drawn from the model, ``batch_size`` rows
    at a time (default: all), seeded by ``seed`` (same seed, batch size and device: same samples).

    The draws are filtered as :func:`sample` says, with :func:`generate`'s defaults (``top_k=1``: greedy;
    ``top_k=0``: the whole vocabulary); ``allowed_tokens`` (a sequence of ids)
    restricts them to those tokens. ``log_probs`` are the model's own (temperature 1, no filter, no mask), so
    samples can be ranked by likelihood. The model runs in eval mode and is put back as it was.
    """
    vocab_size = model.config.vocab_size
    prompt = _as_prompt(prompt, vocab_size)
    for name, value in (("length", length), ("batch_size", batch_size if batch_size is not None else 1)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    check_sampling_arguments(prompt[:1], prompt.shape[1] + length, temperature, top_k, top_p, min_p, 1.0, None, None)
    device = next(model.parameters()).device
    forbidden = None
    if allowed_tokens is not None:
        allowed = torch.as_tensor(allowed_tokens, dtype=torch.long)
        if allowed.dim() != 1 or allowed.numel() == 0 or allowed.min() < 0 or allowed.max() >= vocab_size:
            raise ValueError(f"allowed_tokens must be a non-empty list of ids in [0, {vocab_size}); got "
                             f"{allowed.tolist()}")
        forbidden = torch.ones(vocab_size, dtype=torch.bool, device=device)
        forbidden[allowed.to(device)] = False
    generator = torch.Generator(device=device).manual_seed(seed)

    def choose(logits, _sequence):
        if forbidden is not None:
            logits = logits.masked_fill(forbidden, float("-inf"))
        return sample(logits, top_k=top_k, top_p=top_p, min_p=min_p, temperature=temperature, generator=generator)

    n = prompt.shape[0]
    batch_size = n if batch_size is None else batch_size
    parts = []
    with _eval_mode(model):
        for first in range(0, n, batch_size):
            tokens, log_probs, _ = _decode(model, prompt[first:first + batch_size].to(device), length, choose)
            parts.append((tokens.cpu(), log_probs.cpu()))
    return Samples(tokens=torch.cat([p[0] for p in parts]), log_probs=torch.cat([p[1] for p in parts]),
                   prefix_length=prompt.shape[1])


@torch.inference_mode()
def generate(model, input_ids: torch.Tensor, max_length: int, top_k: int = 1, top_p: float = 0.0,
             min_p: float = 0.0, temperature: float = 1.0, return_dict_in_generate: bool = False,
             output_scores: bool = False, *,
             repetition_penalty: float = 1.0, eos_token_id: int | None = None,
             teacher_outputs: torch.Tensor | None = None, generator: torch.Generator | None = None):
    """Extend input_ids (batch, prompt_len) int64 to at most ``max_length`` tokens (prompt included).

    ``teacher_outputs`` (batch, T), whole sequences prompt included, forces token t to ``teacher_outputs[:, t]``
    for t < T instead of sampling (so ``scores`` can be compared with one forward pass). Once a row emits
    ``eos_token_id`` its later tokens are ``eos_token_id``; decoding stops when every row has. Sampling draws
    from ``generator`` when given (seeded, reproducible). Scores cover the model's real vocabulary
    (``model.config.vocab_size``, not the padding rows), and so does sampling.

    Returns sequences (batch, L_out) int64, or a :class:`GenerateOutput` when ``return_dict_in_generate``.
    """
    check_sampling_arguments(input_ids, max_length, temperature, top_k, top_p, min_p, repetition_penalty, eos_token_id,
                             teacher_outputs)
    embedding_rows = model.config.padded_vocab_size
    if input_ids.min() < 0 or input_ids.max() >= embedding_rows:
        raise ValueError(f"input_ids must be token ids in [0, {embedding_rows}); got values in "
                         f"[{int(input_ids.min())}, {int(input_ids.max())}]")
    device = next(model.parameters()).device
    input_ids = input_ids.to(device=device, dtype=torch.long)
    if teacher_outputs is not None:
        teacher_outputs = teacher_outputs.to(device=device, dtype=torch.long)

    def choose(logits, sequence):
        if repetition_penalty != 1.0:
            logits = modify_logit_for_repetition_penalty(logits.clone(), sequence, repetition_penalty)
        return sample(logits, top_k=top_k, top_p=top_p, min_p=min_p, temperature=temperature, generator=generator)

    sequences, _, scores = _decode(model, input_ids, max_length - input_ids.shape[1], choose, teacher=teacher_outputs,
                                   eos_token_id=eos_token_id, keep_scores=output_scores)
    if not return_dict_in_generate:
        return sequences
    return GenerateOutput(sequences=sequences, scores=tuple(scores) if output_scores else None)
