"""Linear probe, then fine-tune: the probe's head is the minimiser of the penalised logistic loss (checked against
Newton's method with the explicit Hessian), separates a separable set, and a fine-tuning run with
``task.head_init=linear_probe`` starts from the head fitted on its own training windows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from mamba_bio_audio.embedding import head_features
from mamba_bio_audio.models import load_pretrained
from mamba_bio_audio.pipelines.training.tasks.linear_probe import fit_linear_head
from mamba_bio_audio.pipelines.training.train import run


def _newton(x: np.ndarray, y: np.ndarray, classes: int, l2: float, iterations: int = 15) -> np.ndarray:
    """argmin_W mean cross entropy(x W^T, y) + l2/2 |W|^2 by Newton's method (float64, explicit Hessian)."""
    n, d = x.shape
    onehot = np.eye(classes)[y]
    w = np.zeros((classes, d))
    for _ in range(iterations):
        logits = x @ w.T
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = (p - onehot).T @ x / n + l2 * w
        # sum over samples of (diag(p) - p p^T) ⊗ x x^T, classes-major like w.reshape(-1)
        a = np.einsum("ik,kl->ikl", p, np.eye(classes)) - np.einsum("ik,il->ikl", p, p)
        hess = np.einsum("ikl,im,in->kmln", a, x, x).reshape(classes * d, classes * d) / n
        hess += l2 * np.eye(classes * d)
        w -= np.linalg.solve(hess, grad.reshape(-1)).reshape(classes, d)
    return w


def test_probe_head_is_the_penalised_logistic_optimum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((90, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.standard_normal(90) > 0).astype(int) + (x[:, 2] > 0.8)  # 3 overlapping classes
    fitted = fit_linear_head(torch.tensor(x, dtype=torch.float32), torch.tensor(y), 3, l2=0.05)
    np.testing.assert_allclose(fitted.numpy(), _newton(x, y, 3, 0.05), rtol=1e-4, atol=1e-5)


def test_probe_separates_a_separable_set():
    rng = np.random.default_rng(1)
    centres = np.array([[4.0, 0, 1], [-4.0, 0, 1], [0, 4.0, 1], [0, -4.0, 1]])  # the constant column: no bias needed
    y = np.repeat(np.arange(4), 40)
    x = centres[y] + 0.5 * rng.standard_normal((160, 3)) * [1, 1, 0]
    weight = fit_linear_head(torch.tensor(x, dtype=torch.float32), torch.tensor(y), 4)
    assert ((torch.tensor(x, dtype=torch.float32) @ weight.T).argmax(-1).numpy() == y).all()
    with pytest.raises(ValueError, match="features must be"):
        fit_linear_head(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long), 2)


def test_finetuning_starts_from_the_probe_of_its_training_windows(compose, overrides, tiny):
    cfg = compose("experiment=species/apes4_cpu", overrides, tiny.dna,
                  ["++net.config.pooling=mean", "data.seq_len=128", "data.batch_size=8", "data.eval_items=8",
                   "trainer.max_steps=1", "trainer.val_check_interval=1", "trainer.limit_val_batches=1",
                   "task.probe_items=24", "task.optimizer.lr=1e-12", "task.optimizer.weight_decay=0",
                   "task.scheduler.min_lr=0"])
    assert cfg.task.head_init == "linear_probe"  # on by default in the species experiments
    result = run(cfg)
    net = load_pretrained(result.export_dir)  # after one step at lr 1e-12: the weights the run started from
    data = instantiate(cfg.data)
    data.setup("fit")
    features, labels = [], []
    for inputs, targets in data.train_dataloader():  # the first 24 training windows, in training order
        features.append(head_features(net, inputs))
        labels.append(targets)
        if sum(map(len, labels)) >= 24:
            break
    x, y = torch.cat(features)[:24], torch.cat(labels)[:24]
    expected = fit_linear_head(x, y, 4, l2=cfg.task.probe_l2)
    torch.testing.assert_close(net.score.weight, expected, rtol=1e-3, atol=1e-4)
    accuracy = float(((x @ expected.T).argmax(-1) == y).float().mean())
    assert result.metrics["probe/train_acc"] == pytest.approx(accuracy)
