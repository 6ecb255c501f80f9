"""The MQAR DataModule (:mod:`mamba_bio_audio.data_prep.synthetic.mqar`) for ``mamba-bio-audio pretrain
experiment=synthetic/mqar``: drawn on demand, nothing read or written.

Batches are ``(input_ids, targets)``, int64 (batch, seq_len) each, ``targets`` -100 except at the queries, so the
causal LM task's loss counts the answers only. Seeding, splits, training order and resume are those of the
synthetic tasks' base (:class:`~.synthetic_data.SyntheticDataModule`).
"""
from __future__ import annotations

from mamba_bio_audio.data_prep.synthetic.mqar import check_mqar, mqar
from mamba_bio_audio.pipelines.training.synthetic_data import SyntheticDataModule

__all__ = ["MqarDataModule"]


class MqarDataModule(SyntheticDataModule):
    """MQAR sequences of ``seq_len`` tokens with ``num_pairs`` key-value pairs over ``vocab_size`` ids (the net's
    vocabulary must hold them); ``power_a``: the query gaps' power law (Zoology: 0.01; 1: uniform);
    ``random_non_queries``: random ids instead of the blank 0 between the queries. The other arguments are
    :class:`~.synthetic_data.SyntheticDataModule`'s."""

    draw = staticmethod(mqar)

    def __init__(self, *args, vocab_size: int = 8192, num_pairs: int = 4, power_a: float = 0.01,
                 random_non_queries: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        check_mqar(vocab_size, self.seq_len, num_pairs, power_a, names={
            "vocab_size": "data.vocab_size", "length": "data.seq_len", "num_pairs": "data.num_pairs",
            "power_a": "data.power_a"})
        self.vocab_size, self.num_pairs, self.power_a = vocab_size, num_pairs, power_a
        self.random_non_queries = random_non_queries

    def options(self) -> dict:
        return {"vocab_size": self.vocab_size, "num_pairs": self.num_pairs, "power_a": self.power_a,
                "random_non_queries": self.random_non_queries}
