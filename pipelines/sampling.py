"""Sampling from trained nets: audio clips (Mamba LM or SaShiMi on mu-law tokens) and DNA sequences, each
with the exact log-likelihood of what was generated under the model (temperature 1, no filtering)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mamba_bio_audio.audio_generation import AudioSamples, sample_audio
from mamba_bio_audio.generation import InferenceParams, sample


class RecurrentLM:
    """A :class:`~mamba_bio_audio.models.MambaLMHeadModel` seen through SaShiMi's sampling contract
    (``allocate_inference_cache(batch)``, ``model(inputs, state).logits``, ``step(x, state) -> (logits, state)``),
    so :func:`mamba_bio_audio.audio_generation.sample_audio` draws from it as from a SaShiMi model."""

    def __init__(self, lm):
        self.lm, self.config = lm, lm.config

    def parameters(self):
        return self.lm.parameters()

    def allocate_inference_cache(self, batch_size: int) -> InferenceParams:
        return InferenceParams(max_seqlen=2**31 - 1, max_batch_size=batch_size)

    def __call__(self, input_ids: torch.Tensor, state: InferenceParams):
        out = self.lm(input_ids, inference_params=state)
        state.seqlen_offset += input_ids.shape[1]
        return out

    def step(self, input_ids: torch.Tensor, state: InferenceParams):
        """input_ids (batch,) int64 → (logits (batch, vocab_size), state)."""
        return self.lm.step(input_ids[:, None], state)[:, : self.config.vocab_size], state


def draw_audio(net, n: int, length: int, prefix: torch.Tensor | None = None, **knobs) -> AudioSamples:
    """``n`` clips of ``length`` new mu-law samples from a SaShiMi or Mamba LM net (knobs: temperature, top_k,
    top_p, min_p, seed, batch_size; see :func:`~mamba_bio_audio.audio_generation.sample_audio`)."""
    from mamba_bio_audio.models.sashimi import SashimiLM

    model = net if isinstance(net, SashimiLM) else RecurrentLM(net)
    was_training = net.training
    net.eval()
    try:
        return sample_audio(model, n, length, prefix=prefix, **knobs)
    finally:
        net.train(was_training)


@dataclass
class DnaSamples:
    """tokens (n, P + length) int64 nucleotide ids, the prompt (P) first; log_likelihood (n,) fp32 nats of
    the generated part under the model (temperature 1, whole vocabulary)."""

    tokens: torch.Tensor
    log_likelihood: torch.Tensor
    prefix_length: int


@torch.inference_mode()
def draw_dna(net, n: int, length: int, prefix: torch.Tensor | None = None, temperature: float = 1.0,
             top_k: int = 0, top_p: float = 0.0, seed: int = 0) -> DnaSamples:
    """``n`` sequences of ``length`` new bases continuing ``prefix`` (P,) int64 ids, or, without one, a first
    base drawn uniformly (seeded). Draws are restricted to A, C, G, T (special tokens and N are never drawn);
    one parallel pass over the prompt, then one recurrent step per base."""
    from mamba_bio_audio.tokenizers import NucleotideTokenizer

    if length <= 0 or n <= 0:
        raise ValueError(f"n and length must be > 0; got {n} and {length}")
    bases = torch.as_tensor(NucleotideTokenizer().encode("ACGT"), dtype=torch.long)
    if prefix is None:
        prompt = bases[torch.randint(0, 4, (n, 1), generator=torch.Generator().manual_seed(seed))]
    else:
        prompt = torch.as_tensor(prefix, dtype=torch.long).reshape(1, -1).expand(n, -1)
    was_training = net.training
    net.eval()
    model, vocab = RecurrentLM(net), net.config.vocab_size
    device = next(net.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    forbidden = torch.ones(vocab, dtype=torch.bool, device=device)
    forbidden[bases.to(device)] = False
    state = model.allocate_inference_cache(n)
    logits = model(prompt.to(device), state).logits[:, -1, :vocab]
    drawn, log_likelihood = [], torch.zeros(n, device=device)
    for _ in range(length):
        token = sample(logits.masked_fill(forbidden, float("-inf")), top_k=top_k, top_p=top_p,
                       temperature=temperature, generator=generator)
        log_likelihood += torch.log_softmax(logits.float(), -1).gather(-1, token[:, None])[:, 0]
        drawn.append(token)
        logits, state = model.step(token, state)
    net.train(was_training)
    tokens = torch.cat([prompt, torch.stack(drawn, 1).cpu()], dim=1)
    return DnaSamples(tokens=tokens, log_likelihood=log_likelihood.cpu(), prefix_length=prompt.shape[1])
