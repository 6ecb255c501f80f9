"""Study 2: induction-heads accuracy against test length, 2^8 ... 2^20 tokens, for a Mamba and a Transformer++ of
the same parameter count, both trained at length 256 (Gu & Dao 2023, §4.1.2, Table 2: 2-layer models,
vocabulary 16, trained at 256; the paper's Mamba stays exact up to 2^20).

Mamba is evaluated through chunked state passing (:func:`~.synthetic_runs.last_token_accuracy` with a chunk):
memory stays that of one chunk whatever the length. The Transformer++ runs one causal attention pass with RoPE
positions beyond the training length, up to ``transformer_max_length``: its time grows as L², and its memory
(keys and values of every token) with L; past that length it is not run and the result says so.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mamba_bio_audio.data_prep.synthetic.induction_heads import VOCAB_SIZE, induction_heads
from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png
from mamba_bio_audio.pipelines.studies import synthetic_runs as runs

NAME = "induction"

# quick: a smoke test (seconds, figures meaningless). default: the paper's model (2 layers, d_model 64), batch (8)
# and constant learning rates (App. E.1: 1e-3 for Mamba, 2e-4 for attention, which did not learn at 1e-3), after a
# 10 % warmup; 6000 steps: 8 min 19 s measured on 2 idle CPU cores. full: also the paper's Mamba steps (204,800:
# 25 "epochs" of 8192; the paper gave attention twice as many) and more test sequences (a GPU).
SIZES = {
    "quick": dict(d_model=16, n_layer=2, d_state=4, train_length=256, steps=3, batch=2, lr=3e-3,
                  transformer_lr=3e-3, lengths=[256, 1024, 4096], tokens_per_length=4096, max_sequences=4, chunk=512,
                  transformer_max_length=1024),
    "default": dict(d_model=64, n_layer=2, d_state=16, train_length=256, steps=6000, batch=8, lr=1e-3,
                    transformer_lr=2e-4, lengths=[2**e for e in range(8, 21)], tokens_per_length=2**20,
                    max_sequences=64, chunk=2**14, transformer_max_length=2**13),
    "full": dict(d_model=64, n_layer=2, d_state=16, train_length=256, steps=204800, batch=8, lr=1e-3,
                 transformer_lr=2e-4, lengths=[2**e for e in range(8, 21)], tokens_per_length=2**24,
                 max_sequences=512, chunk=2**16, transformer_max_length=2**16),
}


def matched_transformer_width(mamba_layer_params: int, d_model: int) -> int:
    """SwiGLU hidden units giving a Transformer++ layer (4·d² attention, 3·d·h MLP, 2 norms) the parameters of
    one Mamba layer."""
    return max(1, round((mamba_layer_params - 4 * d_model**2 - 2 * d_model) / (3 * d_model)))


def sequences_at(length: int, size: dict) -> int:
    """Test sequences at ``length``: ``tokens_per_length`` tokens, at least 4, at most ``max_sequences``."""
    return max(4, min(size["max_sequences"], size["tokens_per_length"] // length))


@torch.no_grad()
def state_half_lives(model, draw, *, n: int, length: int, seed: int) -> list[dict]:
    """How long each Mamba layer can hold what it writes into its state, measured on ``n`` drawn sequences of
    ``length``: a state entry (channel d, state n) decays by exp(Δ_t(d) · A(d, n)) at token t, so over many tokens
    it halves after ln 2 / (mean_t Δ_t(d) · |A(d, n)|) tokens. Per layer: ``slowest_half_life`` (tokens, the
    longest of any entry), ``channels_beyond_2^20`` (channels whose slowest entry keeps half its value for more
    than 2^20 tokens) and ``channels``. Δ_t is taken from the layer's own x_proj output and dt_proj (the
    softplus of the scan), on the model's device."""
    layers = [layer.mixer for layer in model.backbone.layers]
    captured = {}
    hooks = [mixer.x_proj.register_forward_hook(lambda module, args, out, i=i: captured.__setitem__(i, out))
             for i, mixer in enumerate(layers)]
    try:
        inputs, _ = draw(np.random.default_rng(seed), n, length)
        model(torch.from_numpy(inputs).to(next(model.parameters()).device), num_last_tokens=1)
    finally:
        for hook in hooks:
            hook.remove()
    lives = []
    for i, mixer in enumerate(layers):
        dt_low = mixer._ssm_params(captured[i].float())[0]
        delta = F.softplus(F.linear(dt_low, mixer.dt_proj.weight.float(), mixer.dt_proj.bias.float()))
        rate = delta.mean(dim=(0, 1))[:, None] * torch.exp(mixer.A_log.float())  # (d_inner, N) per token
        half_life = math.log(2) / rate.min(dim=1).values.clamp_min(1e-30)  # per channel, its slowest entry
        lives.append({"layer": i, "slowest_half_life": float(half_life.max()),
                      "channels_beyond_2^20": int((half_life > 2**20).sum()), "channels": int(half_life.numel())})
    return lives


def run_study(*, full: bool, seed: int, quick: bool = False) -> dict:
    size_name = "full" if full else "quick" if quick else "default"
    size = SIZES[size_name]
    mamba = runs.mamba_lm(VOCAB_SIZE, size["d_model"], size["n_layer"], seed, d_state=size["d_state"])
    layer_params = runs.n_params(mamba.backbone.layers[0])
    transformer = runs.transformer_lm(VOCAB_SIZE, size["d_model"], size["n_layer"], n_head=4,
                                      d_intermediate=matched_transformer_width(layer_params, size["d_model"]),
                                      seed=seed)
    models = {"mamba": mamba, "transformer": transformer}
    results = {"models": {}}
    with runs.progress() as bar:
        for name, model in models.items():
            lr = size["lr" if name == "mamba" else "transformer_lr"]
            info = runs.train(model, induction_heads, steps=size["steps"], batch=size["batch"],
                              length=size["train_length"], lr=lr, seed=seed, bar=bar, label=f"train {name}")
            accuracy, sequences = {}, {}
            evaluate = bar.add_task(f"test {name}", total=len(size["lengths"]))
            for length in size["lengths"]:
                if name == "transformer" and length > size["transformer_max_length"]:
                    bar.update(evaluate, advance=1)
                    continue
                n = sequences_at(length, size)
                accuracy[length] = runs.last_token_accuracy(
                    model, induction_heads, n=n, length=length, seed=seed + 1000 + length,
                    batch=max(1, min(n, 2**16 // length)) if name == "transformer" else max(1, min(n, 2**18 // length)),
                    chunk=size["chunk"] if name == "mamba" else None)
                sequences[length] = n
                bar.update(evaluate, advance=1)
            results["models"][name] = {"parameters": runs.n_params(model), "train_seconds": info["seconds"],
                                       "final_train_loss": info["final_loss"],
                                       "accuracy": {str(k): v for k, v in accuracy.items()},
                                       "sequences": {str(k): v for k, v in sequences.items()}}
            if name == "mamba":
                results["models"][name]["state_half_lives"] = state_half_lives(
                    model, induction_heads, n=4, length=4 * size["train_length"], seed=seed + 7)
    results["transformer_stops_at"] = size["transformer_max_length"]
    return {"parameters": {"size": size_name, "seed": seed,
                           "vocab_size": VOCAB_SIZE, **size},
            "results": results, "verdict": verdict(results)}


def verdict(results: dict) -> list[str]:
    """The target (Mamba >= 99 % at every length) met or missed, and where the Transformer++ falls."""
    lines = []
    mamba = {int(k): v for k, v in results["models"]["mamba"]["accuracy"].items()}
    worst = min(mamba, key=mamba.get)
    if all(v >= 0.99 for v in mamba.values()):
        lines.append(f"target met: Mamba >= 99 % at every length 2^{int(math.log2(min(mamba)))} .. "
                     f"2^{int(math.log2(max(mamba)))} (lowest {mamba[worst]:.1%} at {worst})")
    else:
        missed = [k for k, v in sorted(mamba.items()) if v < 0.99]
        lines.append(f"target MISSED: Mamba below 99 % at {len(missed)} of {len(mamba)} lengths "
                     f"({', '.join(f'2^{int(math.log2(k))}: {mamba[k]:.1%}' for k in missed)}); final training "
                     f"loss {results['models']['mamba']['final_train_loss']:.3f} nats (chance: ln 15 = 2.708): "
                     + ("not learned at the training length in these steps" if mamba.get(256, 0) < 0.99
                        else "learned at 256, lost at longer lengths"))
    lives = results["models"]["mamba"].get("state_half_lives")
    if lives:
        longest = {f"layer {life['layer']}": life["slowest_half_life"] for life in lives}
        lines.append("Mamba's slowest state halves after "
                     + ", ".join(f"{k}: {v:,.0f} tokens" for k, v in longest.items())
                     + " (mean Δ on test sequences); " + (
                         "every layer has channels that hold half their state beyond 2^20 tokens, so a decay of the "
                         "stored answer does not explain a fall before 2^20" if min(longest.values()) > 2**20 else
                         "a layer forgets within 2^20 tokens, so a decay of what it stores can explain a fall"))
    transformer = {int(k): v for k, v in results["models"]["transformer"]["accuracy"].items()}
    below = [k for k, v in sorted(transformer.items()) if v < 0.99]
    lines.append("Transformer++: " + ", ".join(f"2^{int(math.log2(k))} {v:.0%}" for k, v in sorted(transformer.items()))
                 + (f"; below 99 % from {below[0]} tokens" if below else "")
                 + f"; not run beyond 2^{int(math.log2(results['transformer_stops_at']))} (attention time grows "
                   f"as L^2 and its key/value memory as L)")
    return lines


def plot(result: dict, png_path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, entry in result["results"]["models"].items():
        points = sorted((int(k), v) for k, v in entry["accuracy"].items())
        ax.plot([p[0] for p in points], [100 * p[1] for p in points], marker="o",
                label=f"{name} ({entry['parameters']:,} params)")
    ax.axvline(result["parameters"]["train_length"], color="grey", linestyle=":", label="training length")
    ax.set_xscale("log", base=2)
    ax.set_ylim(0, 102)
    ax.set_xlabel("test sequence length (tokens)")
    ax.set_ylabel("induction-heads accuracy (%)")
    ax.set_title("Induction heads: trained at 256, tested up to 2^20")
    ax.legend()
    fig.tight_layout()
    save_png(fig, png_path)
