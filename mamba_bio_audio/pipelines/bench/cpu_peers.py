"""The peers ``bench cpu`` measures ours against, at the same shapes, in the same process: mambapy's ``Mamba``
(parallel scan in PyTorch) in its ``LM``'s layout and transformers' ``MambaForCausalLM`` (its CPU path without the
CUDA kernels: a Python loop over L). Each peer is optional: when its package cannot be imported the row says so
and the run goes on.

Every peer model is built at the given width (d_model, N 16, expand 2, conv 4, the given layers and vocabulary),
seeded; a training step is forward + mean cross entropy + backward + AdamW step on random ids; decoding is greedy,
``tokens`` steps at batch 1 from a one-token prompt, the peer's own recurrent step (mambapy ``Mamba.step``,
transformers ``generate`` with its cache).
"""
from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mamba_bio_audio.pipelines.bench.timing import failure, median_seconds

__all__ = ["PEERS", "measure_peer"]

_CPU = torch.device("cpu")


class _MambapyLM(torch.nn.Module):
    """mambapy's ``LM`` (embedding, ``Mamba``, RMSNorm, head) rebuilt from ``mambapy.mamba`` alone: ``mambapy.lm``
    also imports its Mamba-2, which needs ``mamba_ssm``."""

    def __init__(self, config, vocab: int):
        from mambapy.mamba import Mamba, RMSNorm

        super().__init__()
        self.config = config
        self.embedding = torch.nn.Embedding(vocab, config.d_model)
        self.mamba = Mamba(config)
        self.norm_f = RMSNorm(config.d_model, config.rms_norm_eps)
        self.lm_head = torch.nn.Linear(config.d_model, vocab, bias=False)

    def forward(self, tokens):
        return self.lm_head(self.norm_f(self.mamba(self.embedding(tokens))))

    def step(self, token, caches):
        x, caches = self.mamba.step(self.embedding(token), caches)
        return self.lm_head(self.norm_f(x)), caches


def _mambapy(d_model: int, n_layer: int, vocab: int):
    from mambapy.mamba import MambaConfig

    model = _MambapyLM(MambaConfig(d_model=d_model, n_layers=n_layer, d_state=16, expand_factor=2, d_conv=4), vocab)

    def logits(ids):
        return model(ids)

    def decode(tokens: int) -> float:
        m = model.config
        caches = [(torch.zeros(1, m.d_inner, m.d_state), torch.zeros(1, m.d_inner, m.d_conv - 1))
                  for _ in range(m.n_layers)]
        token = torch.zeros(1, dtype=torch.long)
        started = time.perf_counter()
        for _ in range(tokens):
            out, caches = model.step(token, caches)
            token = out.argmax(-1)
        return time.perf_counter() - started

    return model, logits, decode


def _transformers(d_model: int, n_layer: int, vocab: int):
    from transformers import MambaConfig, MambaForCausalLM

    config = MambaConfig(vocab_size=vocab, hidden_size=d_model, state_size=16, num_hidden_layers=n_layer, expand=2,
                         conv_kernel=4, use_mambapy=False, pad_token_id=0, bos_token_id=0, eos_token_id=None)
    model = MambaForCausalLM(config)

    def logits(ids):
        return model(ids).logits

    def decode(tokens: int) -> float:
        prompt = torch.zeros(1, 1, dtype=torch.long)
        started = time.perf_counter()
        model.generate(prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        return time.perf_counter() - started

    return model, logits, decode


PEERS: dict[str, tuple[str, Callable]] = {
    "mambapy": ("mambapy Mamba (parallel scan in PyTorch) as its LM", _mambapy),
    "transformers": ("transformers MambaForCausalLM (CPU path: Python loop over L)", _transformers),
}


def measure_peer(name: str, *, d_model: int, n_layer: int, vocab: int, batch: int, length: int, decode_tokens: int,
                 repeats: int, seed: int = 0) -> dict:
    """Training step (ms, tokens/s) at (batch, ``length``) and greedy decoding (tokens/s, µs per token) at batch 1
    of the peer ``name``. Returns {"peer", "what", "length", "step_ms", "tokens_per_s", "decode_tokens_per_s",
    "decode_us_per_token"}, or {"peer", "skipped": why} when its package cannot be imported, or {"peer",
    "error"} when it fails."""
    what, build = PEERS[name]
    torch.manual_seed(seed)
    try:
        model, logits, decode = build(d_model, n_layer, vocab)
    except ImportError as err:
        return {"peer": name, "what": what, "skipped": f"not importable ({failure(err)})"}
    try:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, vocab, (batch, length + 1), generator=generator)

        def step():
            out = logits(ids[:, :-1])
            F.cross_entropy(out.reshape(-1, out.shape[-1]), ids[:, 1:].reshape(-1)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step_s = median_seconds(step, _CPU, repeats)
        model.eval()
        with torch.no_grad():
            decode(min(decode_tokens, 8))  # warm-up
            decode_s = decode(decode_tokens)
    except Exception as err:  # a peer's failure is a row, not the end of the run
        return {"peer": name, "what": what, "error": failure(err)}
    return {"peer": name, "what": what, "length": length, "step_ms": round(step_s * 1e3, 1),
            "tokens_per_s": round(batch * length / step_s, 1),
            "decode_tokens_per_s": round(decode_tokens / decode_s, 1),
            "decode_us_per_token": round(decode_s / decode_tokens * 1e6, 1)}
