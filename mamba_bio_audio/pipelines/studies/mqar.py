"""Study 4, ``mqar``: multi-query associative recall accuracy against the state size N of Mamba (1 ... 64) and the
number of key-value pairs, against a Transformer++ of the same width: the "memory capacity" curve (Zoology, Arora
et al., ICML 2024, Figure 2, asks the same of many architectures; the Mamba paper, Gu & Dao 2023, has no MQAR).

Every model (2 layers, one width) trains for the same steps on the same freshly drawn batches, each batch with a
pair count drawn from ``train_pairs``, and is scored on held-out sequences at each count of ``pairs``: the
fraction of queries whose value it predicts exactly (argmax). A count above the largest trained one asks for more
pairs than the model ever stored. Mamba's recurrent state per layer is ``expand * d_model * N`` numbers, fixed;
the Transformer++ keeps every key and value it has seen (``2 * d_model`` per token), so its state grows with the
sequence. "Matches" means a mean accuracy over the pair counts within :data:`MATCH_TOLERANCE` of the
Transformer++'s. A model "left the guessing plateau" when it scores more than halfway from naming any value of
the context (1/P at P pairs) to perfect at every trained pair count: Mamba learns MQAR in a sudden transition
whose step varies with the seed and N, so the verdict names the N that did not get there.
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

# quick: a smoke test (seconds). default: 9 min 10 s measured on 2 idle CPU cores (Mamba N=64 is 3.5 min of it): a
# size where Mamba leaves the guessing plateau (vocabulary 32, 4 trained pairs; sizes where the state would bind, 8+
# trained pairs or 31+ keys, kept it there for 3000+ steps: docs/reviewers.md).
# full: Zoology's Figure 2 task (vocabulary 8192, length 256, up to 64 pairs) for a GPU.
SIZES = {
    "quick": dict(vocab_size=16, length=32, train_pairs=[2, 4], pairs=[2, 4], states=[1, 4], d_model=16, n_layer=2,
                  n_head=1, steps=3, batch=4, lr=1e-3, test_sequences=8),
    "default": dict(vocab_size=32, length=32, train_pairs=[4], pairs=[2, 4, 8], states=[1, 4, 16, 64], d_model=32,
                    n_layer=2, n_head=1, steps=3000, batch=128, lr=3e-3, test_sequences=256),
    "full": dict(vocab_size=8192, length=256, train_pairs=[4, 8, 16, 32, 64], pairs=[4, 8, 16, 32, 64],
                 states=[1, 2, 4, 8, 16, 32, 64], d_model=128, n_layer=2, n_head=1, steps=20000, batch=64, lr=1e-3,
                 test_sequences=3000),
}


def _draw(size: dict, pairs: list[int]):
    """A ``draw(rng, batch, length)`` of MQAR batches, each batch's pair count drawn from ``pairs``."""
    def draw(rng: np.random.Generator, batch: int, length: int):
        return mqar(rng, batch, length, vocab_size=size["vocab_size"], num_pairs=int(rng.choice(pairs)))
    return draw


def _train_and_score(model, size: dict, seed: int, bar, label: str) -> dict:
    info = runs.train(model, _draw(size, size["train_pairs"]), steps=size["steps"], batch=size["batch"],
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
                  "guessing_plateau": {str(p): 1 / p for p in size["pairs"]},
                  "task": "Zoology MQAR: keys 1 .. V/2-1, values V/2 .. V-1, every key queried once, power-law "
                          "gaps (power_a 0.01), blank filler"}
    return {"parameters": parameters, "results": results, "verdict": verdict(results, size)}


def matching_state(results: dict) -> int | None:
    """The smallest N from which every Mamba (that N and all larger) matches the Transformer++'s mean accuracy
    (within the tolerance), or None when the largest N does not."""
    target = results["transformer"]["mean_accuracy"] - MATCH_TOLERANCE
    match = None
    for n in sorted(results["mamba"], key=int, reverse=True):
        if results["mamba"][n]["mean_accuracy"] < target:
            break
        match = int(n)
    return match


def left_plateau(row: dict, train_pairs: list[int]) -> bool:
    """Whether a model scores more than halfway from guessing among the context's values (1/P) to perfect at every
    trained pair count P (``row``: one model's result, accuracies keyed by the pair count as a string)."""
    return all(row["accuracy"][str(p)] > (1 + 1 / p) / 2 for p in train_pairs)


def verdict(results: dict, size: dict) -> list[str]:
    """Plain lines: the N at which Mamba matches the Transformer++ (or that none does), whether accuracy rises with
    N and, where it does not or where it may for another reason, why; the hardest pair count; pair counts beyond
    the trained ones."""
    mamba, transformer = results["mamba"], results["transformer"]
    states = sorted(mamba, key=int)
    means = [mamba[n]["mean_accuracy"] for n in states]
    curve = ", ".join(f"N={n} {m:.1%}" for n, m in zip(states, means))
    match = matching_state(results)
    train_pairs, steps = size["train_pairs"], size["steps"]
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
    if match is not None and int(match) == int(states[0]):
        lines.append(f"the smallest state (N = {states[0]}, {EXPAND * size['d_model'] * int(states[0])} numbers per "
                     f"layer) already matches: the state size does not bind at these sizes")
    stuck = [n for n in states if not left_plateau(mamba[n], train_pairs)]
    guess = ", ".join(f"{1 / p:.0%} at {p}" for p in train_pairs)
    if stuck and len(stuck) < len(states):
        lines.append(f"Mamba N = {', '.join(stuck)} did not leave the guessing plateau (naming a value seen, not the "
                     f"one paired with the key: {guess} pairs) within {steps} steps, where the other N did: Mamba "
                     f"learns MQAR in a sudden transition whose step varies with N and the seed, so at this size the "
                     f"curve mixes how fast each N learns with what its state can hold (one seed)")
    hardest = str(max(size["pairs"]))
    lines.append(f"at {hardest} pairs: Transformer++ {transformer['accuracy'][hardest]:.1%}, Mamba "
                 + ", ".join(f"N={n} {mamba[n]['accuracy'][hardest]:.1%}" for n in states))
    beyond = [p for p in size["pairs"] if p > max(train_pairs)]
    if beyond:
        lines.append(f"{', '.join(map(str, beyond))} pairs: more than the models were trained on ({train_pairs}), so "
                     f"these scores also measure how a model carries the task to more pairs than it stored in "
                     f"training")
    if len(stuck) == len(states) and left_plateau(transformer, train_pairs):
        lines.append(f"Mamba stays on the guessing plateau at every N ({guess} pairs) after {steps} steps, where the "
                     f"Transformer++ has left it: at this size that is a limit of the training steps, not shown to be "
                     f"one of the state size")
    if len(stuck) == len(states) and not left_plateau(transformer, train_pairs):
        lines.insert(0, f"NOT LEARNED: no model left the guessing plateau ({guess} pairs): this size's training "
                        f"steps are too few, so the comparison below says little (run --full on a GPU)")
    return lines


def plot(result: dict, png_path) -> None:
    """Left: mean accuracy vs N (Transformer++ as a line); right: accuracy vs pairs, one line per model, and the
    guessing plateau."""
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
    right.plot(pairs, [1 / p for p in pairs], ls=":", color="gray", label="guessing plateau (1/P)")
    right.set_xscale("log", base=2)
    right.set(xlabel="key-value pairs", ylabel="MQAR accuracy", ylim=(0, 1.02), title="recall vs pairs")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, Path(png_path))
