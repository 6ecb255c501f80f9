"""Sequence classification fine-tuning: cross entropy, accuracy and macro F1 (torchmetrics), test confusion matrix."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from mamba_bio_audio.pipelines.training.tasks.base import TrainingTask


class SequenceClassificationTask(TrainingTask):
    """Batches ``(input_ids (batch, L) int64, label (batch,) int64)``; the net (a
    :class:`~mamba_bio_audio.models.MambaForSequenceClassification`, last-token pooling for causal models by
    default) returns ``.logits`` (batch, num_labels) and ``.loss``.

    Logs ``{train,val,test}/{loss,acc,f1}`` (micro accuracy, macro F1) and ``val/acc_best``; after testing,
    :attr:`confusion` holds the (num_labels, num_labels) int64 test confusion matrix (rows: true class).
    """

    def __init__(self, net, optimizer: Callable[..., torch.optim.Optimizer], scheduler: dict, num_classes: int):
        super().__init__(net, optimizer, scheduler)
        self.metrics = nn.ModuleDict({  # keyed "stage_<stage>": "train" is a Module method name
            f"stage_{stage}": nn.ModuleDict({"acc": MulticlassAccuracy(num_classes, average="micro"),
                                  "f1": MulticlassF1Score(num_classes, average="macro")})
            for stage in ("train", "val", "test")})
        self.val_acc_best = MaxMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.confusion: torch.Tensor | None = None

    def _step(self, batch, stage: str) -> torch.Tensor:
        inputs, labels = batch
        out = self.net(inputs, labels=labels)
        preds = out.logits.argmax(-1)
        for name, metric in self.metrics[f"stage_{stage}"].items():
            metric(preds, labels)
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "acc")
        self.log(f"{stage}/loss", out.loss.detach(), on_step=stage == "train", on_epoch=True,
                 batch_size=inputs.shape[0], sync_dist=stage != "train")
        if stage == "test":
            self.test_confusion.update(preds, labels)
        return out.loss

    def training_step(self, batch, batch_idx):
        return self.check_loss(self._step(batch, "train"))

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.val_acc_best.update(self.metrics["stage_val"]["acc"].compute())
            self.log("val/acc_best", self.val_acc_best.compute())

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def on_test_epoch_end(self):
        self.confusion = self.test_confusion.compute().cpu()
        self.test_confusion.reset()
