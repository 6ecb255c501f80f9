"""Study 4, ``mqar``: multi-query associative recall accuracy against the state size N of Mamba (1 ... 64) and the
number of key-value pairs, against a Transformer++ of the same width: the "memory capacity" curve (Zoology, Arora
et al., ICML 2024, Figure 2, asks the same of many architectures; the Mamba paper, Gu & Dao 2023, has no MQAR).

Every model (2 layers, one width) trains for the same steps on the same freshly drawn batches, each batch with a
pair count drawn from ``pairs`` (one model covers them all), and is scored on held-out sequences at each pair
count: the fraction of queries whose value it predicts exactly (argmax). Mamba's recurrent state per layer is
``expand * d_model * N`` numbers, fixed; the Transformer++ keeps every key and value it has seen (``2 * d_model``
per token), so its state grows with the sequence. "Matches" means a mean accuracy over the pair counts within
:data:`MATCH_TOLERANCE` of the Transformer++'s.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mamba_bio_audio.data_prep.synthetic.mqar import mqar
from mamba_bio_audio.pipelines.reporting.plots import pyplot, save_png
from mamba_bio_audio.pipelines.studies import synthetic_runs as runs
from mamba_bio_audio.pipelines.studies.induction import matched_transformer_width

NAME = "mqar"
MATCH_TOLERANCE = 0.02
EXPAND = 2  # the Mamba block's expansion (the mixer's default)

# quick: a smoke test (seconds). default: minutes on 2 CPU cores (small vocabulary, short sequences).
# full: Zoology's Figure 2 task (vocabulary 8192, length 256, up to 64 pairs) for a GPU.
SIZES = {
    "quick": dict(vocab_size=16, length=32, pairs=[2, 4], states=[1, 4], d_model=16, n_layer=2, n_head=1,
                  steps=3, batch=4, lr=1e-3, test_sequences=8),
    "default": dict(vocab_size=16, length=32, pairs=[2, 4, 6], states=[1, 2, 4, 8, 16, 32, 64], d_model=64,
                    n_layer=2, n_head=1, steps=600, batch=32, lr=1e-3, test_sequences=256),
    "full": dict(vocab_size=8192, length=256, pairs=[4, 8, 16, 32, 64], states=[1, 2, 4, 8, 16, 32, 64],
                 d_model=128, n_layer=2, n_head=1, steps=20000, batch=64, lr=1e-3, test_sequences=3000),
}


def _draw(size: dict, pairs: list[int]):
    """A ``draw(rng, batch, length)`` of MQAR batches, each batch's pair count drawn from ``pairs``."""
    def draw(rng: np.random.Generator, batch: int, length: int):
        return mqar(rng, batch, length, vocab_size=size["vocab_size"], num_pairs=int(rng.choice(pairs)))
    return draw


def _train_and_score(model, size: dict, seed: int, bar, label: str) -> dict:
    info = runs.train(model, _draw(size, size["pairs"]), steps=size["steps"], batch=size["batch"],
                      length=size["length"], lr=size["lr"], seed=seed, bar=bar, label=label)
    accuracy = {str(p): runs.answer_accuracy(model, _draw(size, [p]), n=size["test_sequences"],
                                             length=size["length"], seed=seed + 1 + p)
                for p in size["pairs"]}
    return {"parameters": runs.n_params(model), "accuracy": accuracy,
            "mean_accuracy": float(np.mean(list(accuracy.values()))), "train_seconds": round(info["seconds"], 1),
            "final_train_loss": round(info["final_loss"], 4)}


def run_study(*, full: bool, seed: int, quick: bool = False) -> dict:
    """Train and score the Transformer++ and a Mamba per state size; see the module docstring."""
    name = "full" if full else "quick" if quick else "default"
    size = SIZES[name]
    d, vocab = size["d_model"], size["vocab_size"]
    reference = runs.mamba_lm(vocab, d, size["n_layer"], seed, d_state=16)
    width = matched_transformer_width(runs.n_params(reference.backbone.layers[0]), d)
    del reference
    results = {}
    with runs.progress() as bar:
        transformer = runs.transformer_lm(vocab, d, size["n_layer"], n_head=size["n_head"], d_intermediate=width,
                                          seed=seed)
        results["transformer"] = _train_and_score(transformer, size, seed, bar, "train transformer++") | {
            "state_per_layer": f"2 * d_model * tokens = {2 * d} per token"}
        mamba = {}
        for n in size["states"]:
            model = runs.mamba_lm(vocab, d, size["n_layer"], seed, d_state=n)
            mamba[str(n)] = _train_and_score(model, size, seed, bar, f"train mamba N={n}") | {
                "state_per_layer": EXPAND * d * n}
        results["mamba"] = mamba
    parameters = {"size": name, "seed": seed, **size, "transformer_d_intermediate": width,
                  "match_tolerance": MATCH_TOLERANCE, "chance": 1 / (vocab - vocab // 2),
                  "task": "Zoology MQAR: keys 1 .. V/2-1, values V/2 .. V-1, every key queried once, power-law "
                          "gaps (power_a 0.01), blank filler"}
    return {"parameters": parameters, "results": results, "verdict": verdict(results, size)}


def matching_state(results: dict) -> int | None:
    """The smallest N whose Mamba matches the Transformer++'s mean accuracy (within the tolerance), or None."""
    target = results["transformer"]["mean_accuracy"] - MATCH_TOLERANCE
    matched = [int(n) for n, r in results["mamba"].items() if r["mean_accuracy"] >= target]
    return min(matched) if matched else None


def verdict(results: dict, size: dict) -> list[str]:
    """The N at which Mamba matches the Transformer++, whether accuracy rises with N, and the hardest pair count."""
    mamba, transformer = results["mamba"], results["transformer"]
    states = sorted(mamba, key=int)
    means = [mamba[n]["mean_accuracy"] for n in states]
    curve = ", ".join(f"N={n} {m:.1%}" for n, m in zip(states, means))
    match = matching_state(results)
    lines = [(f"Mamba matches Transformer++ ({transformer['mean_accuracy']:.1%}) from N = {match}"
              if match is not None else
              f"Mamba does not match Transformer++ ({transformer['mean_accuracy']:.1%}) within N <= {states[-1]}")
             + f"; mean accuracy over {size['pairs']} pairs: {curve}"]
    # rising: never falling by more than the tolerance, and up by more than twice it from the smallest N
    rising = (all(b >= a - MATCH_TOLERANCE for a, b in zip(means, means[1:]))
              and means[-1] - means[0] > 2 * MATCH_TOLERANCE)
    lines.append("accuracy rises with N" if rising else
                 f"accuracy does not rise with N at these sizes ({means[0]:.1%} at N={states[0]}, {means[-1]:.1%} at "
                 f"N={states[-1]})")
    hardest = str(max(size["pairs"]))
    lines.append(f"at {hardest} pairs: Transformer++ {transformer['accuracy'][hardest]:.1%}, Mamba "
                 + ", ".join(f"N={n} {mamba[n]['accuracy'][hardest]:.1%}" for n in states))
    guess = 1 / min(size["pairs"])  # naming one of the values seen, not the one paired with the key
    if max(means) < 0.5 <= transformer["mean_accuracy"]:
        lines.append(f"Mamba stays on the guessing plateau at every N (naming a value seen, not the one paired with "
                     f"the key: at most {guess:.0%} at {min(size['pairs'])} pairs) after {size['steps']} steps, where "
                     f"the Transformer++ has left it: at this size that is a limit of the training steps, not shown to "
                     f"be one of the state size")
    if max(means + [transformer["mean_accuracy"]]) < 0.5:
        lines.insert(0, f"NOT LEARNED: every model is below 50 % (guessing among the values in context scores at "
                        f"most {guess:.0%} at {min(size['pairs'])} pairs): this size's training steps are too few to "
                        f"leave the guessing plateau, so the comparison below says little (run --full on a GPU)")
    return lines


def plot(result: dict, png_path) -> None:
    """Left: mean accuracy vs N (Transformer++ as a line); right: accuracy vs pairs, one line per model."""
    plt = pyplot()
    res = result["results"]
    states = sorted(res["mamba"], key=int)
    pairs = [int(p) for p in res["transformer"]["accuracy"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2), dpi=120)
    left.plot([int(n) for n in states], [res["mamba"][n]["mean_accuracy"] for n in states], marker="o",
              label="Mamba")
    left.axhline(res["transformer"]["mean_accuracy"], ls="--", color="C3", label="Transformer++ (same width)")
    left.set_xscale("log", base=2)
    left.set(xlabel="Mamba state size N", ylabel="MQAR accuracy (mean over pair counts)", ylim=(0, 1.02),
             title="recall vs state size")
    for i, n in enumerate(states):
        right.plot(pairs, [res["mamba"][n]["accuracy"][str(p)] for p in pairs], marker="o", ms=3,
                   color=plt.cm.viridis(i / max(1, len(states) - 1)), label=f"Mamba N={n}")
    right.plot(pairs, [res["transformer"]["accuracy"][str(p)] for p in pairs], marker="s", ls="--", color="C3",
               label="Transformer++")
    right.set_xscale("log", base=2)
    right.set(xlabel="key-value pairs", ylabel="MQAR accuracy", ylim=(0, 1.02), title="recall vs pairs")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, Path(png_path))
