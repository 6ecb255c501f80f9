"""Sequence classification fine-tuning: cross entropy, accuracy and macro F1 (torchmetrics), test confusion matrix."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from mamba_bio_audio.pipelines.training.tasks.base import TrainingTask

HEAD_INITS = ("random", "linear_probe")


class SequenceClassificationTask(TrainingTask):
    """Batches ``(input_ids (batch, L) int64, label (batch,) int64)``; the net (a
    :class:`~mamba_bio_audio.models.MambaForSequenceClassification`, last-token pooling for causal models by
    default) returns ``.logits`` (batch, num_labels) and ``.loss``.

    Logs ``{train,val,test}/{loss,acc,f1}`` (micro accuracy, macro F1) and ``val/acc_best``; after testing,
    :attr:`confusion` holds the (num_labels, num_labels) int64 test confusion matrix (rows: true class).

    ``head_init``: ``random`` trains the head as the net was built (or loaded); ``linear_probe`` first fits the
    head on the frozen net's pooled features of the first ``probe_items`` training windows (logistic regression
    with L2 penalty ``probe_l2``, :mod:`.linear_probe`), then fine-tunes everything. The probe runs when a fit
    starts from scratch, not when it resumes from a checkpoint (whose head it would overwrite); it logs
    ``probe/train_acc`` and ``probe/seconds``, and :attr:`probe` keeps its :class:`.linear_probe.ProbeResult`.
    """

    def __init__(self, net, optimizer: Callable[..., torch.optim.Optimizer], scheduler: dict, num_classes: int,
                 head_init: str = "random", probe_items: int = 512, probe_l2: float = 1e-3):
        super().__init__(net, optimizer, scheduler)
        if head_init not in HEAD_INITS:
            raise ValueError(f"task.head_init must be one of {', '.join(HEAD_INITS)}; got {head_init!r}")
        if probe_items < 1 or not probe_l2 > 0:
            raise ValueError(f"task.probe_items must be >= 1 and task.probe_l2 > 0; got {probe_items} and {probe_l2}")
        self.head_init, self.probe_items, self.probe_l2 = head_init, probe_items, probe_l2
        self.probe = None
        self.metrics = nn.ModuleDict({  # keyed "stage_<stage>": "train" is a Module method name
            f"stage_{stage}": nn.ModuleDict({"acc": MulticlassAccuracy(num_classes, average="micro"),
                                  "f1": MulticlassF1Score(num_classes, average="macro")})
            for stage in ("train", "val", "test")})
        self.val_acc_best = MaxMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.confusion: torch.Tensor | None = None

    def on_fit_start(self) -> None:
        if self.head_init != "linear_probe" or self.trainer.ckpt_path is not None:
            return
        from mamba_bio_audio.pipelines.training.tasks.linear_probe import probe_head

        datamodule = self.trainer.datamodule
        if datamodule is None:
            raise ValueError("task.head_init=linear_probe reads the training windows of a DataModule; this fit has none")
        self.probe = probe_head(self.net, datamodule.train_dataloader(), self.probe_items, self.probe_l2)
        # each rank's loader holds its own shard of windows: every rank takes rank 0's head, so the replicas agree
        weight = self.trainer.strategy.broadcast(self.net.score.weight.detach().cpu(), src=0)
        with torch.no_grad():
            self.net.score.weight.copy_(weight.to(self.net.score.weight.device))
        if self.trainer.is_global_zero:  # a line beside the progress lines, as they print
            print(f"linear probe: head fitted on {self.probe.items} training windows in {self.probe.seconds:.1f} s, "
                  f"training accuracy {100 * self.probe.train_acc:.1f} %", flush=True)

    def on_train_start(self) -> None:
        if self.probe is not None:
            self.log_dict({"probe/train_acc": self.probe.train_acc, "probe/seconds": self.probe.seconds})

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
