"""Causal LM pretraining: each position predicts the next token (the batch's aligned ``targets``)."""
from __future__ import annotations

from mamba_bio_audio.pipelines.training.tasks.language_model import LanguageModelTask, scored_tokens

__all__ = ["CausalLMTask"]


class CausalLMTask(LanguageModelTask):
    """Batches ``(input_ids, targets, ...)`` int64 (batch, L), ``targets`` already aligned to the positions; the
    net returns ``.loss`` given ``targets=``. Logs what :class:`~.language_model.LanguageModelTask` logs."""

    def training_step(self, batch, batch_idx):
        inputs, targets = batch[0], batch[1]
        loss = self.check_loss(self.net(inputs, targets=targets).loss)
        self.log_train(loss, inputs.shape[0])
        return loss

    def _eval_step(self, batch, stage: str) -> None:
        inputs, targets = batch[0], batch[1]
        loss = self.net(inputs, targets=targets).loss
        self.eval_loss[stage].update(loss.detach(), weight=scored_tokens(targets, self.pad_token_id))
