"""The MQAR study's verdict against hand-made results whose reading is known: where Mamba matches the
Transformer++, whether accuracy rises with N, which N stayed on the guessing plateau, and when the state does not
bind (no training: the verdict is a function of the figures)."""
from __future__ import annotations

from mamba_bio_audio.pipelines.studies.mqar import left_plateau, matching_state, verdict

SIZE = dict(pairs=[2, 4, 8], train_pairs=[4], steps=3000, d_model=32)
PLATEAU = (0.5, 0.25, 0.13)  # naming any value seen: 1/P
SOLVED = (1.0, 1.0, 1.0)


def _row(accuracy) -> dict:
    accuracy = {str(p): a for p, a in zip(SIZE["pairs"], accuracy)}
    return {"accuracy": accuracy, "mean_accuracy": sum(accuracy.values()) / len(accuracy)}


def _results(transformer, **mamba) -> dict:
    return {"transformer": _row(transformer), "mamba": {n.lstrip("N"): _row(a) for n, a in mamba.items()}}


def test_a_rising_curve_names_where_mamba_matches():
    results = _results(SOLVED, N1=(0.9, 0.7, 0.3), N4=(1.0, 0.9, 0.5), N16=(1.0, 1.0, 0.97), N64=SOLVED)
    lines = verdict(results, SIZE)
    assert matching_state(results) == 16
    assert lines[0].startswith("Mamba matches Transformer++ (100.0%) from N = 16;")
    assert "N=1 63.3%" in lines[0] and "N=64 100.0%" in lines[0]
    assert lines[1] == "accuracy rises with N"
    assert lines[2] == "at 8 pairs: Transformer++ 100.0%, Mamba N=1 30.0%, N=4 50.0%, N=16 97.0%, N=64 100.0%"
    assert lines[3].startswith("8 pairs: more than the models were trained on ([4])")
    assert not any("plateau" in line or "does not bind" in line for line in lines)


def test_mamba_on_the_plateau_at_every_n_is_called_a_limit_of_the_steps():
    results = _results(SOLVED, N1=PLATEAU, N4=PLATEAU, N16=PLATEAU, N64=PLATEAU)
    lines = verdict(results, SIZE)
    assert matching_state(results) is None
    assert lines[0].startswith("Mamba does not match Transformer++ (100.0%) within N <= 64")
    assert lines[1].startswith("accuracy does not rise with N at these sizes (29.3% at N=1, 29.3% at N=64)")
    assert "stays on the guessing plateau at every N (25% at 4 pairs) after 3000 steps" in lines[-1]
    assert not lines[0].startswith("NOT LEARNED")


def test_no_model_learning_puts_not_learned_first():
    lines = verdict(_results(PLATEAU, N1=PLATEAU, N4=PLATEAU), SIZE)
    assert lines[0].startswith("NOT LEARNED: no model left the guessing plateau (25% at 4 pairs)")
    assert not any("where the Transformer++ has left it" in line for line in lines)


def test_a_smallest_state_that_already_matches_says_the_state_does_not_bind():
    lines = verdict(_results(SOLVED, N1=SOLVED, N4=SOLVED), SIZE)
    assert lines[0].startswith("Mamba matches Transformer++ (100.0%) from N = 1;")
    assert lines[1].startswith("accuracy does not rise with N")
    assert lines[2] == ("the smallest state (N = 1, 64 numbers per layer) already matches: the state size does not "
                        "bind at these sizes")


def test_the_n_that_stayed_on_the_plateau_are_named_and_a_lone_match_below_them_is_not_the_answer():
    results = _results(SOLVED, N1=SOLVED, N4=PLATEAU, N16=PLATEAU, N64=SOLVED)
    lines = verdict(results, SIZE)
    assert matching_state(results) == 64  # N = 1 matches, but N = 4 and 16 do not: "from N = 64"
    assert lines[0].startswith("Mamba matches Transformer++ (100.0%) from N = 64;")
    assert lines[1].startswith("accuracy does not rise with N")
    (stuck,) = [line for line in lines if "did not leave the guessing plateau" in line]
    assert stuck.startswith("Mamba N = 4, 16 did not leave")
    assert "within 3000 steps" in stuck


def test_the_plateau_threshold_is_halfway_from_guessing_to_perfect():
    assert not left_plateau(_row((1.0, 0.62, 1.0)), [4])  # (1 + 1/4) / 2 = 0.625
    assert left_plateau(_row((0.0, 0.63, 0.0)), [4])
    assert not left_plateau(_row((0.74, 1.0, 1.0)), [2, 4])  # (1 + 1/2) / 2 = 0.75 at 2 pairs
