"""The species fine-tuning pipeline learns a signal that is there: the tiny species differ in GC content
(30, 40, 50, 60 %), which the k-mer baseline reads off base counts (tests/pipelines/test_quickstart_report.py);
the Mamba classifier, trained from scratch through the same Hydra run as quickstart, has to find it too.
Mean pooling keeps the test short: last-token pooling (the default) gets there too, in about 200 steps."""
from __future__ import annotations

from mamba_bio_audio.pipelines.training.train import run


def test_classifier_learns_species_that_differ_in_composition(compose, overrides):
    cfg = compose("experiment=species/apes4_cpu", overrides,
                  ["++net.config.n_layer=2", "++net.config.pooling=mean", "++net.config.d_model=32", "data.seq_len=256", "data.batch_size=16",
                   "data.eval_items=128", "trainer.max_steps=80", "trainer.val_check_interval=40",
                   "trainer.limit_val_batches=2", "task.optimizer.lr=3e-3", "callbacks.model_checkpoint.save_top_k=1"])
    result = run(cfg)
    # 256 bases: GC differences of 10 points are 3.2 standard deviations apart, so about 87 % is possible
    assert result.metrics["test/acc"] > 0.6, result.metrics
