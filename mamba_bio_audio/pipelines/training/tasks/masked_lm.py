"""Masked-LM pretraining (BERT-style, as Caduceus): 15 % of the bases are chosen, 80 % of those become [MASK],
10 % a random token, 10 % stay; the loss is the cross entropy of the original token at the chosen positions.

The DNA windows' ``input_ids`` are masked on the fly by :func:`~mamba_bio_audio.models.caduceus.mlm_mask`,
with a generator seeded from (seed, epoch, batch, rank) in training and from (seed, batch) in evaluation, so
every validation scores the same masks and a resumed run masks as an uninterrupted one would. Any net that
returns ``.loss`` from ``labels`` (batch, L), the target of each position, trains: a Caduceus masked LM, or a
causal Mamba LM (which then predicts a masked base from its left context only).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torchmetrics import MeanMetric

from mamba_bio_audio.models.caduceus import mlm_mask
from mamba_bio_audio.pipelines.training.tasks.language_model import LanguageModelTask, scored_tokens
from mamba_bio_audio.targets import counted_mask
from mamba_bio_audio.tokenizers import BASE_IDS

__all__ = ["MaskedLMTask", "mlm_mask"]


def _seed(*parts: int) -> int:
    value = 0
    for part in parts:
        value = (value * 1_000_003 + int(part)) % (2**63 - 1)
    return value


class MaskedLMTask(LanguageModelTask):
    """Batches ``(input_ids, ...)`` int64 (batch, L) (the DNA windows; their next-token targets are unused).

    Logs what :class:`~.language_model.LanguageModelTask` logs, over the masked tokens: ``{train,val,test}/loss``
    (nats), ``/ppl``, ``/bpt`` (bits per masked base), ``val/loss_best``, and ``/acc``, the argmax accuracy on
    masked tokens.

    Args:
        net, optimizer, scheduler: as :class:`~mamba_bio_audio.pipelines.training.tasks.base.TrainingTask`.
        mask_probability, mask_fraction, random_fraction: the BERT rates (0.15, 0.8, 0.1).
        random_ids: ids a randomised position draws from (None: every id of the net's ``vocab_size``, as
            Caduceus' collator draws from the whole tokenizer vocabulary).
        maskable_ids: ids that may be chosen (None: A, C, G, T).
        seed: base seed of the masks.
    """

    def __init__(self, net, optimizer: Callable[..., torch.optim.Optimizer], scheduler: dict,
                 mask_probability: float = 0.15, mask_fraction: float = 0.8, random_fraction: float = 0.1,
                 random_ids: Sequence[int] | None = None, maskable_ids: Sequence[int] | None = None, seed: int = 0):
        super().__init__(net, optimizer, scheduler)
        vocab_size = int(getattr(net.config, "vocab_size"))
        self.masking = dict(probability=mask_probability, mask_fraction=mask_fraction,
                            random_fraction=random_fraction, pad_token_id=self.pad_token_id,
                            maskable_ids=tuple(maskable_ids or BASE_IDS),
                            random_ids=tuple(random_ids if random_ids is not None else range(vocab_size)))
        mlm_mask(torch.zeros(1, 1, dtype=torch.long), torch.Generator(), **self.masking)  # bad rates fail here
        self.seed = seed
        self.eval_acc = torch.nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})
        self._eval_batches = {"val": 0, "test": 0}

    def _scored(self, inputs: torch.Tensor, seed: int):
        """(loss, masked-token accuracy, labels) of inputs (batch, L) masked with ``seed``."""
        masked, labels = mlm_mask(inputs, torch.Generator().manual_seed(seed), **self.masking)
        out = self.net(masked, labels=labels)
        keep = counted_mask(labels, self.pad_token_id)
        hits = (out.logits.argmax(-1) == labels) & keep
        return out.loss, hits.sum() / keep.sum().clamp(min=1), labels

    def training_step(self, batch, batch_idx):
        inputs = batch[0]
        loss, acc, _ = self._scored(inputs, _seed(self.seed, self.current_epoch, batch_idx, self.global_rank))
        loss = self.check_loss(loss)
        self.log_train(loss, inputs.shape[0], acc=acc)
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        index = self._eval_batches[stage]
        self._eval_batches[stage] += 1
        loss, acc, labels = self._scored(batch[0], _seed(self.seed, 7919, index))
        weight = scored_tokens(labels, self.pad_token_id)
        self.eval_loss[stage].update(loss.detach(), weight=weight)
        self.eval_acc[stage].update(acc, weight=weight)

    def _eval_epoch_end(self, stage: str) -> torch.Tensor:
        self._eval_batches[stage] = 0
        self.log(f"{stage}/acc", self.eval_acc[stage].compute(), sync_dist=True)
        self.eval_acc[stage].reset()
        return super()._eval_epoch_end(stage)
